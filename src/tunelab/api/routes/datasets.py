"""Datasets, their items (uploaded as multipart forms) and exports; the audio files they hold."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, UploadFile
from fastapi.responses import FileResponse

from tunelab.api.deps import ServicesDep
from tunelab.api.openapi import COMMON, WRITES, errors, links
from tunelab.api.routing import StrictJSONRoute, blocking
from tunelab.domain.artifacts import Artifact
from tunelab.domain.common import ID_REGEX, Page
from tunelab.domain.datasets import (
    AUDIO_FORMATS,
    RESERVED_DATASET_IDS,
    Dataset,
    DatasetCreate,
    DatasetDetail,
    DatasetItem,
)
from tunelab.services.datasets import Upload

router = APIRouter(prefix="/api", tags=["datasets"], route_class=StrictJSONRoute)
DatasetId = Annotated[str, Path(pattern=ID_REGEX, description="A dataset id (ds-…).",
                                json_schema_extra={"not": {"enum": list(RESERVED_DATASET_IDS)}})]  # fmt: skip
ItemId = Annotated[str, Path(pattern=ID_REGEX, description="An item id (item-…).")]
AudioId = Annotated[str, Path(pattern=ID_REGEX, description="An audio id (aud-…).")]
CREATED = links("dataset_id", {"get": ("GET", "/api/datasets/{dataset_id}"),
                               "addItem": ("POST", "/api/datasets/{dataset_id}/items"),
                               "export": ("POST", "/api/datasets/{dataset_id}/export")})  # fmt: skip
ITEM_CREATED = links(
    "item_id", {"delete": ("DELETE", "/api/datasets/{dataset_id}/items/{item_id}")}, dataset_id="dataset_id"
)
ITEM_CREATED["links"]["play"] = {
    "operationRef": "#/paths/~1api~1audio~1{audio_id}/get",
    "parameters": {"audio_id": "$response.body#/audio_id"},
}  # a supervised item's clip


@router.post("/datasets", status_code=201, responses={**errors(*WRITES, 409), 201: CREATED})
async def create_dataset(body: DatasetCreate, services: ServicesDep) -> Dataset:
    """A new empty dataset of rated clips (`supervised`) or preference pairs (`preference`); 409
    `dataset_name_taken`. Its type is fixed once it holds items."""
    return await blocking(services.datasets.create, body)


@router.get("/datasets", responses=errors(*COMMON))
async def list_datasets(services: ServicesDep) -> Page[Dataset]:
    """Every dataset, newest first, with its item count and total duration."""
    return await blocking(services.datasets.list_page)


@router.post("/datasets/demo", status_code=201, responses={**errors(*WRITES), 201: CREATED})
async def create_demo_dataset(services: ServicesDep) -> Dataset:
    """A supervised dataset of short synthesised melodies with prompts and ratings, to train on at once."""
    return await blocking(services.datasets.demo)


@router.get("/datasets/{dataset_id:dataset_id}", responses=errors(*COMMON, 404, 405))
async def get_dataset(dataset_id: DatasetId, services: ServicesDep) -> DatasetDetail:
    """One dataset with its items."""
    return await blocking(services.datasets.detail, dataset_id)


@router.post("/datasets/{dataset_id}/items", status_code=201,
             responses={**errors(*WRITES, 404, 409), 201: ITEM_CREATED})  # fmt: skip
async def add_item(
    dataset_id: DatasetId,
    services: ServicesDep,
    prompt: Annotated[str | None, Form(max_length=2000, description="What the clip should sound like.")] = None,
    rating: Annotated[str | None, Form(max_length=10, description="1-5; supervised items only.")] = None,
    audio: Annotated[UploadFile | None, File(description="A supervised item's clip: WAV, FLAC or OGG.")] = None,
    chosen: Annotated[UploadFile | None, File(description="A preference item's preferred clip.")] = None,
    rejected: Annotated[UploadFile | None, File(description="A preference item's other clip.")] = None,
) -> DatasetItem:
    """Add one item as a multipart form: supervised `prompt`, `rating` and the file `audio`; preference `prompt`
    and the files `chosen` and `rejected`. Each file is decoded before anything is kept (at most 50 MB and 120 s):
    422 `invalid_audio` or `invalid_item` with the reason, 413 `file_too_large`; nothing is kept on an error."""
    fields = {name: value for name, value in (("prompt", prompt), ("rating", rating)) if value is not None}
    files: dict[str, Upload] = {
        side: (upload.file, upload.filename)
        for side, upload in (("audio", audio), ("chosen", chosen), ("rejected", rejected))
        if upload is not None
    }
    return await blocking(services.datasets.add_item, dataset_id, fields, files)


@router.delete("/datasets/{dataset_id}/items/{item_id}", responses=errors(*WRITES, 404))
async def delete_item(dataset_id: DatasetId, item_id: ItemId, services: ServicesDep) -> Dataset:
    """Remove an item from its dataset (its audio stays: exports and runs that used it still name it)."""
    return await blocking(services.datasets.delete_item, dataset_id, item_id)


@router.post("/datasets/{dataset_id}/export", status_code=201, responses=errors(*WRITES, 404))
async def export_dataset(dataset_id: DatasetId, services: ServicesDep) -> Artifact:
    """Write the dataset as the training command's JSONL (absolute paths) to exports/{dataset_id}/ and record it
    as a `dataset_export` artifact (the same content, the same artifact); 422 `dataset_empty`."""
    return await blocking(services.datasets.export, dataset_id)


@router.get("/audio/{audio_id}", response_class=FileResponse, responses=errors(*COMMON, 404))
async def get_audio(audio_id: AudioId, services: ServicesDep) -> FileResponse:
    """A stored clip, as it was uploaded (byte ranges supported, for players)."""
    audio, path = await blocking(services.datasets.audio, audio_id)
    return FileResponse(path, media_type=AUDIO_FORMATS[audio.format][1], filename=f"{audio.id}.{path.suffix[1:]}",
                        content_disposition_type="inline")  # fmt: skip
