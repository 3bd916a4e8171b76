"""PDF and Word .docx files in vector stores: their text is indexed and found by a search;
what cannot be read fails with `unsupported_file`, never a server error."""

from __future__ import annotations

import io

import pytest
from docx import Document

from vector_stores.extract import UnsupportedFile, file_text


def pdf_bytes(*lines: str, encrypt: bool = False) -> bytes:
    """A one-page PDF whose text layer holds `lines` (Helvetica), written object by object."""
    shown = "".join(f"({line}) Tj 0 -16 Td " for line in lines)
    content = f"BT /F1 12 Tf 72 720 Td {shown}ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    if encrypt:
        from pypdf import PdfReader, PdfWriter

        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(bytes(out))))
        writer.encrypt(user_password="secret", owner_password="owner")
        buffer = io.BytesIO()
        writer.write(buffer)
        return buffer.getvalue()
    return bytes(out)


def docx_bytes(*paragraphs: str, table: list[list[str]] | None = None) -> bytes:
    document = Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_text_is_read_from_pdf_docx_and_utf8() -> None:
    assert "Glaciers carve valleys." in file_text(
        pdf_bytes("Glaciers carve valleys.", "Rivers follow them."), max_chars=10_000
    )
    text = file_text(
        docx_bytes("Tea grows on hills.", table=[["crop", "region"], ["tea", "Assam"]]),
        max_chars=10_000,
    )
    assert text.splitlines() == ["Tea grows on hills.", "crop | region", "tea | Assam"]
    assert file_text("\ufeffplain é".encode(), max_chars=5) == "plain"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (pdf_bytes("hidden", encrypt=True), "encrypted"),
        (b"%PDF-1.4\n" + b"\x00garbage" * 50, "could not be read"),
        (pdf_bytes(), "no text layer"),
        (b"PK\x03\x04" + b"\x00" * 40, "not text"),  # a ZIP that is no .docx
        (b"\xff\xfe\x00\x01" * 10, "Only text files"),
        (b"text\x00with a NUL", "NUL"),
    ],
)
def test_what_cannot_be_read_is_unsupported(raw: bytes, message: str) -> None:
    with pytest.raises(UnsupportedFile) as caught:
        file_text(raw, max_chars=10_000)
    assert message in caught.value.message


def test_a_pdf_and_a_docx_are_indexed_and_found(key_sdk) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    pdf = client.files.create(
        file=(
            "lighthouses.pdf",
            io.BytesIO(pdf_bytes("Lighthouses warn ships away from rocky coasts at night.")),
        ),
        purpose="assistants",
    ).id
    docx = client.files.create(
        file=("bread.docx", io.BytesIO(docx_bytes("Sourdough bread rises with wild yeast."))),
        purpose="assistants",
    ).id
    broken = client.files.create(
        file=("broken.pdf", io.BytesIO(b"%PDF-1.7\n" + b"\x01" * 200)), purpose="assistants"
    ).id
    store = client.vector_stores.create(name="docs", file_ids=[pdf, docx, broken])
    counts = client.vector_stores.retrieve(store.id).file_counts
    assert (counts.completed, counts.failed, counts.total) == (2, 1, 3)
    failed = client.vector_stores.files.retrieve(vector_store_id=store.id, file_id=broken)
    assert failed.last_error is not None and failed.last_error.code == "unsupported_file"

    ships = client.vector_stores.search(
        store.id, query="ships near rocky coasts", max_num_results=1
    )
    assert [hit.file_id for hit in ships.data] == [pdf]
    assert "Lighthouses warn ships" in ships.data[0].content[0].text
    yeast = client.vector_stores.search(store.id, query="wild yeast bread", max_num_results=1)
    assert [hit.file_id for hit in yeast.data] == [docx]
