"""The operator API of warm transfers (PROTOCOL.md "Operator console") and the page.

- ``GET /v1/operator/transfers``: waiting and live transfers (operator key).
- ``POST /v1/operator/transfers/{id}/decline``: send a waiting transfer back to the AI.
- ``GET /operator``: the console page (``parley/web/operator.html``).

No bearer token: 401 ``unauthorized``; any other token: 403 ``forbidden`` (nothing
about the transfers is revealed). Accepting is joining: the human's ``/v1/voice``
leg (``operator_leg.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from parley.channels.chat import ServicesDep, TokenDep
from parley.channels.http_errors import ApiError
from parley.channels.http_models import error_responses
from parley.channels.raw_ws import ParleyApp
from parley.channels.services import Services
from parley.channels.strict_route import StrictRoute
from parley.handoff.state import IllegalTransition

PAGE = Path(__file__).resolve().parent.parent / "web" / "operator.html"

router = APIRouter(prefix="/v1/operator", tags=["operator"], route_class=StrictRoute)


def require_operator(services: Services, token: str | None) -> None:
    if not token:
        raise ApiError(401, "unauthorized", "the operator key is required")
    if not services.lifecycle.is_operator(token):
        raise ApiError(403, "forbidden", "this token is not the operator key")


@router.get("/transfers", responses=error_responses(401, 403))
async def list_transfers(services: ServicesDep, token: TokenDep) -> dict[str, Any]:
    """Waiting and live transfers, oldest status first."""
    require_operator(services, token)
    return {"transfers": await services.transfers.listing()}


@router.post("/transfers/{transfer_id}/decline", responses=error_responses(401, 403, 404, 409))
async def decline_transfer(
    transfer_id: str, services: ServicesDep, token: TokenDep
) -> dict[str, Any]:
    """Decline a waiting transfer: the AI takes the caller back and says so."""
    require_operator(services, token)
    transfer = await services.transfers.board.get(transfer_id)
    if transfer is None:
        raise ApiError(404, "transfer_not_found", "no such live transfer")
    try:
        transfer = await services.transfers.apply(transfer_id, "declined")
    except IllegalTransition:
        raise ApiError(
            409, "transfer_not_waiting", f"the transfer is {transfer.status.value}"
        ) from None
    return transfer.wire()


def install(app: ParleyApp, services: Services) -> None:
    app.include_router(router)

    @app.get("/operator", include_in_schema=False, response_model=None)
    async def operator_page() -> FileResponse:
        return FileResponse(PAGE)
