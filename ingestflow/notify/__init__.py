"""Webhooks: an owner's receivers told of what happened to its jobs and documents.

An event is written as one delivery row per subscribed webhook in the same transaction as the change it reports
(the outbox), so a rollback sends nothing and a receiver that is down loses nothing. The `notify` deployment
(flows/notify.py), started by the dispatcher while deliveries are due, posts them signed and records each attempt;
a failed attempt is retried with backoff until the event is `webhook_give_up_s` old.
"""
