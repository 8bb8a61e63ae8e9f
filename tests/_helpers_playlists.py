"""Validating playlist files: XSPF against a RELAX NG schema of XSPF version 1, M3U8 with m3u8.

The schema follows the XSPF 1 specification (https://xspf.org/spec, section 4.1): a
``playlist`` with ``version="1"`` holds at most one of each of its metadata elements, any
number of ``link``/``meta``/``extension``, and exactly one ``trackList`` of ``track`` elements,
each with any number of ``location``/``identifier`` (URIs), at most one title, creator,
annotation, info, image, album, trackNum (a non-negative integer) and duration (milliseconds, a
non-negative integer). Elements may come in any order (``interleave``), as the spec allows.
"""

from __future__ import annotations

from pathlib import Path

XSPF_RNG = """<?xml version="1.0" encoding="UTF-8"?>
<grammar xmlns="http://relaxng.org/ns/structure/1.0" ns="http://xspf.org/ns/0/"
         datatypeLibrary="http://www.w3.org/2001/XMLSchema-datatypes">
  <start>
    <element name="playlist">
      <attribute name="version"><value>1</value></attribute>
      <interleave>
        <optional><element name="title"><text/></element></optional>
        <optional><element name="creator"><text/></element></optional>
        <optional><element name="annotation"><text/></element></optional>
        <optional><element name="info"><data type="anyURI"/></element></optional>
        <optional><element name="location"><data type="anyURI"/></element></optional>
        <optional><element name="identifier"><data type="anyURI"/></element></optional>
        <optional><element name="image"><data type="anyURI"/></element></optional>
        <optional><element name="date"><data type="dateTime"/></element></optional>
        <optional><element name="license"><data type="anyURI"/></element></optional>
        <zeroOrMore><ref name="link"/></zeroOrMore>
        <zeroOrMore><ref name="meta"/></zeroOrMore>
        <element name="trackList">
          <zeroOrMore><ref name="track"/></zeroOrMore>
        </element>
      </interleave>
    </element>
  </start>
  <define name="link">
    <element name="link"><attribute name="rel"><data type="anyURI"/></attribute><data type="anyURI"/></element>
  </define>
  <define name="meta">
    <element name="meta"><attribute name="rel"><data type="anyURI"/></attribute><text/></element>
  </define>
  <define name="track">
    <element name="track">
      <interleave>
        <zeroOrMore><element name="location"><data type="anyURI"/></element></zeroOrMore>
        <zeroOrMore><element name="identifier"><data type="anyURI"/></element></zeroOrMore>
        <optional><element name="title"><text/></element></optional>
        <optional><element name="creator"><text/></element></optional>
        <optional><element name="annotation"><text/></element></optional>
        <optional><element name="info"><data type="anyURI"/></element></optional>
        <optional><element name="image"><data type="anyURI"/></element></optional>
        <optional><element name="album"><text/></element></optional>
        <optional><element name="trackNum"><data type="nonNegativeInteger"/></element></optional>
        <optional><element name="duration"><data type="nonNegativeInteger"/></element></optional>
        <zeroOrMore><ref name="link"/></zeroOrMore>
        <zeroOrMore><ref name="meta"/></zeroOrMore>
      </interleave>
    </element>
  </define>
</grammar>
"""


def validate_xspf(path: Path) -> list[dict[str, str]]:
    """Validate ``path`` against :data:`XSPF_RNG` (AssertionError with lxml's log if invalid) and
    return its tracks as dicts of element name -> text."""
    from lxml import etree

    schema = etree.RelaxNG(etree.fromstring(XSPF_RNG.encode("utf-8")))
    document = etree.parse(str(path))
    assert schema.validate(document), f"{path}: not valid XSPF 1: {schema.error_log}"
    ns = {"x": "http://xspf.org/ns/0/"}
    return [{etree.QName(child).localname: child.text for child in track}
            for track in document.getroot().iterfind("x:trackList/x:track", ns)]


def load_m3u8(path: Path):
    """``path`` parsed by the ``m3u8`` package (a maintained playlist parser from PyPI)."""
    import m3u8

    return m3u8.load(str(path))
