"""A file's text for indexing: PDF (pypdf), Word .docx (python-docx), or UTF-8 text.

The format is told by the bytes, not the name: `%PDF-` starts a PDF, a ZIP holding
`word/document.xml` is a .docx. What cannot be read is `UnsupportedFile`, which indexing
reports as the file's `last_error` (`unsupported_file`).
"""

from __future__ import annotations

import io
import logging
import zipfile

logger = logging.getLogger(__name__)

# A PDF's pages read at most: a bound on the work one upload can ask of a worker.
PDF_MAX_PAGES = 2_000


class UnsupportedFile(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def file_text(raw: bytes, *, max_chars: int) -> str:
    """The text of `raw`, at most `max_chars` characters."""
    if raw.startswith(b"%PDF-"):
        text = _pdf_text(raw, max_chars=max_chars)
    elif raw.startswith(b"PK\x03\x04") and _is_docx(raw):
        text = _docx_text(raw)
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UnsupportedFile(
                "Only text files (UTF-8: text, Markdown, code, JSON, ...), PDF and Word .docx "
                "documents are indexed."
            ) from None
        if "\x00" in text:
            raise UnsupportedFile("The file holds NUL characters: it is not text.")
    return text[:max_chars]


def _pdf_text(raw: bytes, *, max_chars: int) -> str:
    # Imported here: only a worker indexing a PDF needs the parser.
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            raise UnsupportedFile("The PDF is encrypted: its text cannot be read.")
        pages: list[str] = []
        size = 0
        for page in reader.pages[:PDF_MAX_PAGES]:
            text = page.extract_text() or ""
            pages.append(text)
            size += len(text)
            if size >= max_chars:
                break
    except UnsupportedFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, RecursionError) as error:
        logger.info("unreadable PDF: %s", type(error).__name__)
        raise UnsupportedFile("The PDF could not be read.") from None
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise UnsupportedFile("The PDF has no text layer (a scan?): nothing to index.")
    return text


def _is_docx(raw: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            return "word/document.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _docx_text(raw: bytes) -> str:
    from docx import Document  # only a worker indexing a .docx needs it

    try:
        document = Document(io.BytesIO(raw))
    except Exception as error:  # python-docx raises many kinds on a damaged package
        logger.info("unreadable .docx: %s", type(error).__name__)
        raise UnsupportedFile("The Word document could not be read.") from None
    parts = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    return "\n".join(part for part in parts if part.strip())
