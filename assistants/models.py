"""OpenAI's Assistants API (v2) served by Ogem over chat completions: assistants, threads, their
messages, runs and run steps (docs/assistants.md).

Every row carries its tenant (organization, team, creating key) so that another tenant's id reads
as missing. The OpenAI-shaped parts that Ogem only keeps and gives back (tools, content, ...)
are JSON; what the code filters or transitions on is a column.
"""

from __future__ import annotations

from django.db import models


class Owned(models.Model):
    """Whose object it is: the creating key's organization and team (a team's key sees its
    team's objects, an organization's key its organization's, the master key every one)."""

    organization = models.ForeignKey(
        "tenants.Organization", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    team = models.ForeignKey(
        "tenants.Team", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    key = models.ForeignKey(
        "keys.VirtualKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    by_master = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        abstract = True


class Assistant(Owned):
    assistant_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=256, null=True, blank=True)
    description = models.CharField(max_length=512, null=True, blank=True)
    model = models.CharField(max_length=256)
    instructions = models.TextField(null=True, blank=True)
    tools = models.JSONField(default=list, blank=True)
    tool_resources = models.JSONField(default=dict, blank=True)
    temperature = models.FloatField(null=True, blank=True)
    top_p = models.FloatField(null=True, blank=True)
    response_format = models.JSONField(null=True, blank=True)
    reasoning_effort = models.CharField(max_length=16, null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["organization", "team", "created_at"])]

    def __str__(self) -> str:
        return self.assistant_id


class Thread(Owned):
    thread_id = models.CharField(max_length=64, unique=True)
    tool_resources = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["organization", "team", "created_at"])]

    def __str__(self) -> str:
        return self.thread_id


class Message(models.Model):
    message_id = models.CharField(max_length=64, unique=True)
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages")
    created_at = models.DateTimeField()
    role = models.CharField(max_length=16)  # user | assistant
    status = models.CharField(max_length=16, default="completed")
    content = models.JSONField(default=list)  # OpenAI's message content parts
    attachments = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    assistant_id = models.CharField(max_length=64, blank=True)
    run_id = models.CharField(max_length=64, blank=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    incomplete_at = models.DateTimeField(null=True, blank=True)
    incomplete_details = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["thread", "created_at"])]

    def __str__(self) -> str:
        return self.message_id


class Run(Owned):
    """A run of an assistant on a thread. Status machine (docs/assistants.md): queued ->
    in_progress -> requires_action (function calls) -> queued again on submitted outputs ->
    completed | incomplete | failed; cancelling -> cancelled; expired past `expires_at`."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        IN_PROGRESS = "in_progress"
        REQUIRES_ACTION = "requires_action"
        CANCELLING = "cancelling"
        CANCELLED = "cancelled"
        FAILED = "failed"
        COMPLETED = "completed"
        INCOMPLETE = "incomplete"
        EXPIRED = "expired"

    run_id = models.CharField(max_length=64, unique=True)
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="runs")
    assistant_id = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    model = models.CharField(max_length=256)
    instructions = models.TextField(blank=True)
    tools = models.JSONField(default=list, blank=True)
    # The assistant's and the thread's tool resources, merged when the run was made.
    tool_resources = models.JSONField(default=dict, blank=True)
    temperature = models.FloatField(null=True, blank=True)
    top_p = models.FloatField(null=True, blank=True)
    max_prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    max_completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    truncation_strategy = models.JSONField(default=dict)
    tool_choice = models.JSONField(null=True, blank=True)
    parallel_tool_calls = models.BooleanField(default=True)
    response_format = models.JSONField(null=True, blank=True)
    reasoning_effort = models.CharField(max_length=16, null=True, blank=True)
    required_action = models.JSONField(null=True, blank=True)
    last_error = models.JSONField(null=True, blank=True)
    incomplete_details = models.JSONField(null=True, blank=True)
    usage = models.JSONField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # The worker advancing it and until when that hold lasts; a lapsed hold lets another resume.
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["thread", "created_at"]),
            models.Index(fields=["status", "lease_expires_at"]),
        ]

    def __str__(self) -> str:
        return self.run_id


class RunStep(models.Model):
    step_id = models.CharField(max_length=64, unique=True)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    created_at = models.DateTimeField()
    type = models.CharField(max_length=32)  # message_creation | tool_calls
    status = models.CharField(max_length=16, default="in_progress")
    step_details = models.JSONField(default=dict)
    last_error = models.JSONField(null=True, blank=True)
    usage = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # What the step adds to the chat conversation of later model calls in its run: the
    # assistant's tool calls, then the tool results (file_search's at once, functions' once
    # submitted). Not part of OpenAI's object.
    conversation = models.JSONField(default=list, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return self.step_id
