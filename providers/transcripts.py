"""A transcript in OpenAI's `/v1/audio/transcriptions` response formats, from the segments and
words a speech-to-text provider returns (Deepgram's utterances, AssemblyAI's sentences, Whisper's
chunks): `json`, `text`, `srt`, `vtt` and `verbose_json` (segments, and words when asked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from providers.errors import InvalidRequestError

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


@dataclass(frozen=True, slots=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start: float
    end: float


@dataclass(slots=True)
class Transcript:
    text: str
    duration: float
    language: str = ""
    segments: list[Segment] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)


def response_format_of(body: dict[str, Any]) -> str:
    value = body.get("response_format") or "json"
    if value not in RESPONSE_FORMATS:
        raise InvalidRequestError(
            f"`response_format` must be one of {', '.join(RESPONSE_FORMATS)}.",
            param="response_format",
        )
    return value


def granularities_of(body: dict[str, Any]) -> set[str]:
    """`timestamp_granularities[]` as a multipart form sends it (one value or several)."""
    raw = body.get("timestamp_granularities[]", body.get("timestamp_granularities"))
    if raw is None:
        return {"segment"}
    values = raw if isinstance(raw, list) else [raw]
    return {str(v) for v in values}


def _clock(seconds: float, *, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cues(transcript: Transcript) -> list[Segment]:
    if transcript.segments:
        return transcript.segments
    return [Segment(0.0, transcript.duration, transcript.text)] if transcript.text else []


def transcript_srt(transcript: Transcript) -> str:
    blocks = []
    for index, cue in enumerate(_cues(transcript), start=1):
        span = f"{_clock(cue.start, separator=',')} --> {_clock(cue.end, separator=',')}"
        blocks.append(f"{index}\n{span}\n{cue.text.strip()}\n")
    return "\n".join(blocks)


def transcript_vtt(transcript: Transcript) -> str:
    blocks = [
        f"{_clock(s.start, separator='.')} --> {_clock(s.end, separator='.')}\n{s.text.strip()}\n"
        for s in _cues(transcript)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def transcript_render(
    transcript: Transcript, *, response_format: str, granularities: set[str]
) -> dict[str, Any] | bytes:
    """The OpenAI-shaped answer: a dict for the JSON formats, bytes for text/srt/vtt."""
    usage = {"type": "duration", "seconds": math.ceil(transcript.duration)}
    if response_format == "text":
        return (transcript.text + "\n").encode()
    if response_format == "srt":
        return transcript_srt(transcript).encode()
    if response_format == "vtt":
        return transcript_vtt(transcript).encode()
    if response_format == "json":
        return {"text": transcript.text, "usage": usage}
    verbose: dict[str, Any] = {
        "task": "transcribe",
        "language": transcript.language,
        "duration": transcript.duration,
        "text": transcript.text,
    }
    if "word" in granularities:
        verbose["words"] = [
            {"word": w.word, "start": w.start, "end": w.end} for w in transcript.words
        ]
    if "segment" in granularities:
        verbose["segments"] = [
            {
                "id": index,
                "seek": 0,
                "start": segment.start,
                "end": segment.end,
                "text": segment.text,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": 0.0,
                "compression_ratio": 0.0,
                "no_speech_prob": 0.0,
            }
            for index, segment in enumerate(_cues(transcript))
        ]
    verbose["usage"] = usage
    return verbose
