"""The adapter registry: register, list, read, activate, deactivate, roll back, rename, delete, compare, diff."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.responses import FileResponse

from tunelab.api.deps import ServicesDep
from tunelab.api.openapi import COMMON, WRITES, errors, links
from tunelab.api.routing import StrictJSONRoute, blocking
from tunelab.domain.adapters import (
    NAME_MAX,
    RESERVED_ADAPTER_IDS,
    Adapter,
    AdapterComparison,
    AdapterCreate,
    AdapterDetail,
    AdapterDiff,
    AdapterGroup,
    AdapterItem,
    AdapterUpdate,
    AdapterVersions,
    RollBack,
)
from tunelab.domain.common import ID_REGEX, Page, PageNumber
from tunelab.services.adapters import MAX_COMPARE

router = APIRouter(prefix="/api/adapters", tags=["adapters"], route_class=StrictJSONRoute)
AdapterId = Annotated[str, Path(pattern=ID_REGEX, description="An adapter id (adp-…).")]
# The routes at /api/adapters/{adapter_id} itself must not take /api/adapters/import, /compare, … as an id.
OwnAdapterId = Annotated[str, Path(pattern=ID_REGEX, description="An adapter id (adp-…).",
                                   json_schema_extra={"not": {"enum": list(RESERVED_ADAPTER_IDS)}})]  # fmt: skip
NameQuery = Annotated[str, Query(min_length=1, max_length=NAME_MAX, description="An adapter name, exactly.")]
OneId = Annotated[str, Query(pattern=ID_REGEX, max_length=128, description="An adapter id.")]
_ONE = ID_REGEX.removeprefix("^").removesuffix("$")
IDS_PATTERN = f"^{_ONE}(,{_ONE}){{0,{MAX_COMPARE - 1}}}$"  # 1 to MAX_COMPARE ids
CREATED = links("adapter_id", {"get": ("GET", "/api/adapters/{adapter_id}"),
                               "update": ("PATCH", "/api/adapters/{adapter_id}"),
                               "delete": ("DELETE", "/api/adapters/{adapter_id}"),
                               "activate": ("POST", "/api/adapters/{adapter_id}/activate"),
                               "deactivate": ("POST", "/api/adapters/{adapter_id}/deactivate"),
                               "export": ("GET", "/api/adapters/{adapter_id}/export"),
                               "performance": ("GET", "/api/adapters/{adapter_id}/performance")})  # fmt: skip


@router.post("", status_code=201, responses={**errors(*WRITES, 409), 201: CREATED})
async def register_adapter(body: AdapterCreate, services: ServicesDep) -> AdapterDetail:
    """Register a PEFT LoRA folder already on disk (inside the data dir or an import root, else 422
    `path_not_allowed`). It is checked without loading a model: a LoRA `adapter_config.json`, safetensors weights
    (pickles are refused) whose tensors are LoRA A/B pairs of the config's rank and fit the base model's modules;
    422 `invalid_adapter` with the reason, 422 `base_model_required` when no registered base model is named. 409
    `adapter_version_exists` with `details.suggested_version`. It starts inactive."""
    return await blocking(services.adapters.register, body)


@router.get("", responses=errors(*COMMON))
async def list_adapters(
    services: ServicesDep,
    active: Annotated[bool | None, Query(description="Only active (true) or inactive (false) adapters.")] = None,
    base_model_id: Annotated[str | None, Query(max_length=128, description="Trained on this base model.")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Part of the name, version or description.")] = None,
    group_by_name: Annotated[bool, Query(description="Items are names with their versions, oldest first.")] = False,
    page: Annotated[PageNumber, Query()] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[AdapterItem] | Page[AdapterGroup]:
    """Adapters not deleted, newest first, each with its base model's capabilities and whether it is `compatible`
    with the current model; with `group_by_name=true`, a page of names, each with its versions."""
    return await blocking(services.adapters.list_page, active, base_model_id, q, group_by_name, page, page_size)


@router.get("/versions", responses=errors(*COMMON, 404))
async def adapter_versions(name: NameQuery, services: ServicesDep) -> AdapterVersions:
    """The version timeline of a name: each version's final and best eval loss, training date, status, experiment
    and run, and when it was active; the name's history; the version a roll back would activate."""
    return await blocking(services.adapters.versions, name)


@router.post("/rollback", responses=errors(*WRITES, 404, 409))
async def roll_back(body: RollBack, services: ServicesDep) -> AdapterDetail:
    """Activate again the version of `name` that was active before the one active now; 409 `nothing_to_roll_back`,
    409 `adapter_incompatible` when that version does not fit the current model."""
    return await blocking(services.adapters.roll_back, body.name)


@router.get("/compare", responses=errors(*COMMON, 404))
async def compare_adapters(
    services: ServicesDep,
    ids: Annotated[
        str,
        Query(
            min_length=1,
            max_length=1400,
            description="Comma-separated adapter ids (1 to 10).",
            json_schema_extra={"pattern": IDS_PATTERN},
        ),
    ],  # fmt: skip
) -> AdapterComparison:
    """Side by side: final loss, best eval loss, DPO reward accuracy and margin where present, with the better adapter
    per metric, and the training configs with the keys that differ. 422 `invalid_compare`, 404 `adapter_not_found`."""
    comparison = await blocking(services.adapters.compare, [part.strip() for part in ids.split(",") if part.strip()])
    comparison.feedback = await blocking(services.abtests.feedback_between, [a.id for a in comparison.adapters])
    return comparison


@router.get("/diff", responses=errors(*COMMON, 404))
async def diff_adapters(a: OneId, b: OneId, services: ServicesDep) -> AdapterDiff:
    """What changed from adapter `a` to adapter `b`: the training config keys that differ, dataset, base model and
    metrics (delta = b - a)."""
    return await blocking(services.adapters.diff, a, b)


@router.get("/{adapter_id:adapter_id}", responses=errors(*COMMON, 404, 405))
async def get_adapter(adapter_id: OwnAdapterId, services: ServicesDep) -> AdapterDetail:
    """One adapter: description, training config (and grouped for display), provenance, base model capabilities,
    compatibility with the current model (with the reason when not), usage."""
    return await blocking(services.adapters.detail, adapter_id)


@router.patch("/{adapter_id:adapter_id}", responses=errors(*WRITES, 404, 405, 409))
async def update_adapter(adapter_id: OwnAdapterId, body: AdapterUpdate, services: ServicesDep) -> AdapterDetail:
    """Rename (1–100 characters once stripped; 409 `adapter_version_exists` when the new name has this version) or
    change the description; `updated_at` changes."""
    return await blocking(services.adapters.update, adapter_id, body)


@router.delete("/{adapter_id:adapter_id}", responses=errors(*WRITES, 404, 405))
async def delete_adapter(adapter_id: OwnAdapterId, services: ServicesDep) -> Adapter:
    """Soft delete: `deleted_at` is set, the adapter leaves listings and can't be activated; its files stay on disk
    and its (name, version) may be registered again. 404 when missing or already deleted."""
    return await blocking(services.adapters.delete, adapter_id)


@router.post("/{adapter_id}/activate", responses=errors(*WRITES, 404, 409))
async def activate_adapter(adapter_id: AdapterId, services: ServicesDep) -> AdapterDetail:
    """Make it available for generation; the version of the same name active before becomes inactive. 409
    `adapter_incompatible` with `details.compatible_adapters` when it does not fit the current model."""
    return await blocking(services.adapters.activate, adapter_id)


@router.post("/{adapter_id}/deactivate", responses=errors(*WRITES, 404))
async def deactivate_adapter(adapter_id: AdapterId, services: ServicesDep) -> AdapterDetail:
    """No new generation request may use it; jobs already running finish."""
    return await blocking(services.adapters.deactivate, adapter_id)


@router.get("/{adapter_id}/export", response_class=FileResponse, responses=errors(*COMMON, 404, 409))
async def export_adapter(adapter_id: AdapterId, services: ServicesDep) -> FileResponse:
    """The adapter as a zip: its PEFT folder, a model card (README.md with `base_model` and
    `base_model_relation: adapter`, the training config and metrics) ready for a model hub, the training config and
    the registry's record (tunelab.json), which `POST /api/adapters/import` reads back. 409 `adapter_files_missing`."""
    path, filename = await blocking(services.adapters.export, adapter_id)
    return FileResponse(path, media_type="application/zip", filename=filename)


@router.post("/import", status_code=201, responses={**errors(*WRITES, 409), 201: CREATED})
async def import_adapter(
    services: ServicesDep,
    archive: Annotated[UploadFile, File(description="A zip made by the export (or any zip of a PEFT LoRA folder).")],
    name: Annotated[str | None, Form(max_length=NAME_MAX, description="Default: the archive's tunelab.json.")] = None,
    version: Annotated[str | None, Form(max_length=64, description="Default: the archive's tunelab.json.")] = None,
    base_model_id: Annotated[str | None, Form(max_length=128, description="Default: the archive's base model.")] = None,
) -> AdapterDetail:
    """Register an exported adapter: unpacked under adapters/imported/ (only the adapter's own files, by name),
    validated as any registration (422 `invalid_adapter`, 409 `adapter_version_exists`), source `imported`; 422
    `invalid_archive` for a file that is not one. Nothing is kept when it fails."""
    return await blocking(services.adapters.import_archive, archive.file, name or None, version or None,
                          base_model_id or None)  # fmt: skip
