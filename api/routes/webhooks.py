"""Webhooks: an owner's receivers of job and document events (ingestflow/notify), and the record of each
delivery. Registering one checks its URL (http or https, with a host) and says why it refuses one."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import select

from api import errors
from api.deps import CurrentUser, IdPath, PageDep, SessionDep
from api.schemas import DeliveryOut, Page, WebhookCreated, WebhookIn, WebhookOut
from ingestflow.db import DeliveryStatus, Webhook, WebhookDelivery, owned

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=errors.documented(401))
SECRET_PREFIX = "whsec_"


@router.post("", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED,
             responses=errors.documented(400))
def create_webhook(body: WebhookIn, db: SessionDep, user: CurrentUser) -> WebhookCreated:
    """Registers a receiver; its secret is in this answer only. Deliveries are POSTs of JSON signed with it (see
    the README: X-Ingestflow-Signature, X-Ingestflow-Timestamp)."""
    hook = Webhook(owner_id=user.id, url=body.url, events=sorted({e.value for e in body.events}),
                   secret=body.secret or SECRET_PREFIX + secrets.token_urlsafe(32), description=body.description)
    db.add(hook)
    db.commit()
    return WebhookCreated(**WebhookOut.model_validate(hook).model_dump(), secret=hook.secret)


@router.get("", response_model=Page[WebhookOut])
def list_webhooks(db: SessionDep, user: CurrentUser, pages: PageDep) -> Page[WebhookOut]:
    query = select(Webhook).where(Webhook.owner_id == user.id)
    return pages.page(db, query, Webhook.created_at.desc(), WebhookOut.model_validate)


@router.get("/{webhook_id}", response_model=WebhookOut, responses=errors.documented(404))
def read_webhook(webhook_id: IdPath, db: SessionDep, user: CurrentUser) -> WebhookOut:
    return WebhookOut.model_validate(owned(db, Webhook, user.id, webhook_id, "webhook"))


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors.documented(404))
def delete_webhook(webhook_id: IdPath, db: SessionDep, user: CurrentUser) -> Response:
    """The receiver and its deliveries' record; nothing more is sent to it."""
    db.delete(owned(db, Webhook, user.id, webhook_id, "webhook"))
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", response_model=Page[DeliveryOut], responses=errors.documented(404))
def list_deliveries(
    webhook_id: IdPath,
    db: SessionDep,
    user: CurrentUser,
    pages: PageDep,
    delivery_status: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
) -> Page[DeliveryOut]:
    """Each event sent or to be sent to this receiver, newest first: status, attempts, the last answer or error."""
    hook = owned(db, Webhook, user.id, webhook_id, "webhook")
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id)
    if delivery_status is not None:
        query = query.where(WebhookDelivery.status == delivery_status)
    return pages.page(db, query, WebhookDelivery.created_at.desc(), DeliveryOut.model_validate)
