"""OpenAI's Responses API on every model: passed through to OpenAI and Azure, served by Ogem over
chat completions everywhere else (views.py; docs/responses.md)."""
