"""Page routes. They render templates; the pages fetch their data from the JSON API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from tunelab.services import Services
from tunelab.web.templating import templates

router = APIRouter(include_in_schema=False)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]


@router.get("/")
def home() -> RedirectResponse:
    """The studio is the home page: where a session starts, with a prompt."""
    return RedirectResponse("/studio", status_code=307)


@router.get("/studio", response_class=HTMLResponse)
def studio_page(request: Request) -> HTMLResponse:
    """The prompt editor with the adapter picker, the clips being made and made (play, download, rate)."""
    return templates.TemplateResponse(request, "studio.html", {"active_nav": "studio"})


@router.get("/abtests", response_class=HTMLResponse)
def abtests_page(request: Request) -> HTMLResponse:
    """Blind A/B tests with their progress and verdicts, and the leaderboard of the current model."""
    return templates.TemplateResponse(request, "abtests.html", {"active_nav": "abtests"})


@router.get("/abtests/new", response_class=HTMLResponse)
def abtest_new_page(request: Request) -> HTMLResponse:
    """Set up an A/B test; ?a=<adapter id>&b=<adapter id> picks the two sides."""
    return templates.TemplateResponse(request, "abtest_new.html", {"active_nav": "abtests"})


@router.get("/abtests/{abtest_id}", response_class=HTMLResponse)
def abtest_page(request: Request, abtest_id: str, services: ServicesDep) -> HTMLResponse:
    """One test: its clips being made, the blind vote pair by pair, the results; 404 page for an unknown id."""
    services.abtests.get(abtest_id)
    return templates.TemplateResponse(request, "abtest.html", {"active_nav": "abtests", "abtest_id": abtest_id})


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request) -> HTMLResponse:
    """The current base model and its limits, the other models, the generation worker."""
    return templates.TemplateResponse(request, "settings.html", {"active_nav": "settings"})


@router.get("/experiments", response_class=HTMLResponse)
def experiments_page(request: Request) -> HTMLResponse:
    """List, create, archive and unarchive experiments."""
    return templates.TemplateResponse(request, "experiments.html", {"active_nav": "experiments"})


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment_page(request: Request, experiment_id: str, services: ServicesDep) -> HTMLResponse:
    """One experiment with its runs and the run comparison; the 404 error page for an unknown id."""
    services.experiments.get(experiment_id)
    context = {"active_nav": "experiments", "experiment_id": experiment_id}
    return templates.TemplateResponse(request, "experiment.html", context)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, services: ServicesDep) -> HTMLResponse:
    """One run: its terminal (xterm.js), charts (uPlot), config, inputs and adapter; 404 page for an unknown id."""
    services.runs.get(run_id)
    return templates.TemplateResponse(request, "run.html", {"active_nav": "experiments", "run_id": run_id})


@router.get("/datasets", response_class=HTMLResponse)
def datasets_page(request: Request) -> HTMLResponse:
    """List and create datasets; an empty studio offers the demo dataset."""
    return templates.TemplateResponse(request, "datasets.html", {"active_nav": "datasets"})


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse)
def dataset_page(request: Request, dataset_id: str, services: ServicesDep) -> HTMLResponse:
    """One dataset: upload clips, listen, delete items."""
    services.datasets.get(dataset_id)
    return templates.TemplateResponse(request, "dataset.html", {"active_nav": "datasets", "dataset_id": dataset_id})


@router.get("/adapters", response_class=HTMLResponse)
def adapters_page(request: Request) -> HTMLResponse:
    """The adapter registry: activate, rename, delete, group versions by name, pick adapters to compare."""
    return templates.TemplateResponse(request, "adapters.html", {"active_nav": "adapters"})


@router.get("/adapters/compare", response_class=HTMLResponse)
def adapter_compare_page(request: Request) -> HTMLResponse:
    """Adapters side by side (?ids=a,b,…); the page shows the API's answer to ids it cannot compare."""
    return templates.TemplateResponse(request, "adapter_compare.html", {"active_nav": "adapters"})


@router.get("/adapters/{adapter_id}", response_class=HTMLResponse)
def adapter_page(request: Request, adapter_id: str, services: ServicesDep) -> HTMLResponse:
    """One adapter: overview, its name's versions and its training configuration; 404 page for an unknown id."""
    services.adapters.get(adapter_id)
    return templates.TemplateResponse(request, "adapter.html", {"active_nav": "adapters", "adapter_id": adapter_id})
