"""The mock provider answers tool and structured-output requests, so tool flows run offline
through the official SDK."""

from __future__ import annotations

import json

import openai
import pydantic

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1},
            },
            "required": ["city", "unit", "days"],
            "additionalProperties": False,
        },
    },
}
CLOCK_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
ASK = [{"role": "user", "content": "Paris"}]


def test_auto_calls_the_first_tool_then_answers_the_tool_result(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        model="mock-chat", messages=ASK, tools=[WEATHER_TOOL, CLOCK_TOOL]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius", "days": 1}
    assert first.usage.completion_tokens > 0
    second = client.chat.completions.create(
        model="mock-chat",
        messages=[
            *ASK,
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "18 degrees"},
        ],
        tools=[WEATHER_TOOL, CLOCK_TOOL],
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.tool_calls is None
    assert second.choices[0].message.content == "Mock reply to: Paris"


def test_tool_choice_none_named_and_required(client: openai.OpenAI) -> None:
    tools = [WEATHER_TOOL, CLOCK_TOOL]
    plain = client.chat.completions.create(
        model="mock-chat", messages=ASK, tools=tools, tool_choice="none"
    )
    assert plain.choices[0].message.content == "Mock reply to: Paris"
    named = client.chat.completions.create(
        model="mock-chat",
        messages=ASK,
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert named.choices[0].message.tool_calls[0].function.name == "get_time"
    assert named.choices[0].message.tool_calls[0].function.arguments == "{}"
    required = client.chat.completions.create(
        model="mock-chat",
        messages=[*ASK, {"role": "tool", "tool_call_id": "x", "content": "done"}],
        tools=tools,
        tool_choice="required",
    )
    assert required.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_streamed_tool_call_assembles_in_the_sdk(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="mock-chat", messages=ASK, tools=[WEATHER_TOOL]
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"] == "Paris"


class Forecast(pydantic.BaseModel):
    city: str
    days: int
    sunny: bool
    hours: list[int]


def test_structured_outputs_parse_in_the_sdk(client: openai.OpenAI) -> None:
    parsed = client.chat.completions.parse(
        model="mock-chat", messages=ASK, response_format=Forecast
    )
    forecast = parsed.choices[0].message.parsed
    assert forecast == Forecast(city="Paris", days=1, sunny=True, hours=[1])
    as_object = client.chat.completions.create(
        model="mock-chat", messages=ASK, response_format={"type": "json_object"}
    )
    assert json.loads(as_object.choices[0].message.content) == {"reply": "Mock reply to: Paris"}
