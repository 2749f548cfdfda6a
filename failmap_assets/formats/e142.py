"""SEMI E142 substrate maps (XML) -> ``WaferMap``, one per ``BinCodeMap`` overlay.

Structure (E142-1 schema, namespace ``urn:semi-org:xsd.E142-1.V...SubstrateMap``;
names matched by local name, case-insensitively)::

    <MapData>
      <Layouts><Layout LayoutId DefaultUnits [TopLevel]>
          <Dimension X Y/> [<DeviceSize X Y Units/>] [<StepSize .../>] [<ProductId>]
          [<ChildLayouts><ChildLayout LayoutId/></ChildLayouts>]
      </Layout>...</Layouts>
      <Substrates><Substrate SubstrateType SubstrateId><LotId>...</Substrate></Substrates>
      <SubstrateMaps>
        <SubstrateMap SubstrateType SubstrateId LayoutSpecifier Orientation
                      OriginLocation AxisDirection SubstrateSide>
          <Overlay MapName MapVersion>
            [<ReferenceDevices><ReferenceDevice><Coordinates X Y/>...]
            <BinCodeMap BinType NullBin>
              <BinDefinitions><BinDefinition BinCode BinCount BinQuality BinDescription Pick/>...
              <BinCode>one row of codes</BinCode>...

Coordinates: E142 maps are arrays in the layout's coordinate system. The n-th
``<BinCode>`` row is y = n and the k-th code in it is x = k, both counted from
``OriginLocation`` along ``AxisDirection`` (``UpRight``: x grows right, y grows up;
``DownRight``, ``UpLeft``, ``DownLeft`` likewise). That is turned into the canonical
frame (x right, y down) here; ``orig_x`` / ``orig_y`` keep the file's (x, y), counted
from the centre when ``OriginLocation`` is ``Center``. Missing attributes take the
schema defaults: ``OriginLocation`` LowerLeft, ``AxisDirection`` UpRight (whatever the
origin), ``SubstrateSide`` TopSide, ``Orientation`` 0. Every combination of the five
``OriginLocation`` and four ``AxisDirection`` values is read; any other value is a
``bad_orientation`` reject naming the attribute and the ``<SubstrateMap>`` line.

``Orientation`` is the rotation of the substrate in degrees, notch at the bottom
for 0, clockwise (the SEMI E5 / G85 convention): 0 D, 90 L, 180 U, 270 R. The
schema allows 0, 90, 180, 270 (Critical Manufacturing's published E142 schema); the
direction is assumed as in G85 (``g85.degrees_to_flat``): no real E142 file exists here.
BinType encodings and NullBin work as in G85 (shared code in ``g85``).
"""

from __future__ import annotations

from typing import AbstractSet
from xml.etree.ElementTree import Element

import numpy as np

from failmap_assets.wafer.model import WaferMap
from failmap_assets.formats.g85 import (
    attrs,
    bin_definitions,
    bin_type_of,
    child_text,
    children,
    decode_grid,
    degrees_to_flat,
    descendants,
    line_of,
    local,
    located,
    merge_verdicts,
    original_attrs,
    parse_xml,
)
from failmap_assets.formats.values import finite_float, parse_int, quote
from failmap_assets.wafer.rejects import Rejected

FORMAT = "e142"

_ORIGINS = {
    "upperleft": "UpperLeft", "upperright": "UpperRight", "lowerleft": "LowerLeft",
    "lowerright": "LowerRight", "center": "Center", "centre": "Center",
    # G85-style numbers some writers put here.
    "1": "UpperRight", "2": "UpperLeft", "3": "LowerLeft", "4": "LowerRight", "0": "Center",
}
_AXES = {"upright": "UpRight", "downright": "DownRight", "upleft": "UpLeft", "downleft": "DownLeft"}
# Attribute defaults and allowed values (SubstrateSide TopSide, Orientation 0, OriginLocation
# LowerLeft, AxisDirection UpRight): the E142-1 schema as published by Critical Manufacturing
# ("CM SEMI E142 Schema", help.criticalmanufacturing.com, table "Supported Substrate Map
# attributes"); artwork.com's SEMI E142 notes state the same defaults. The default axis does not
# depend on OriginLocation.
_DEFAULT_ORIGIN = "LowerLeft"
_DEFAULT_AXES = "UpRight"
# Units of DeviceSize / StepSize -> mm.
_UNITS_MM = {"mm": 1.0, "um": 1e-3, "micron": 1e-3, "microns": 1e-3, "µm": 1e-3, "nm": 1e-6,
             "mil": 0.0254, "mils": 0.0254, "in": 25.4, "inch": 25.4, "cm": 10.0}


def read_e142(data: bytes, pass_bins: AbstractSet[int] | None = None) -> list[WaferMap]:
    """All ``BinCodeMap`` overlays of an E142 file, one ``WaferMap`` each."""
    root = parse_xml(data, "E142")
    layouts = {attrs(el).get("layoutid"): el for el in descendants(root, "layout")}
    substrates = {attrs(el).get("substrateid"): el for el in descendants(root, "substrate")}
    out = []
    for smap in descendants(root, "substratemap"):
        for overlay in children(smap, "overlay"):
            for bcm in children(overlay, "bincodemap"):
                with located(bcm):   # a reject names its construct and, at least, the <BinCodeMap> line
                    out.append(_read_overlay(smap, overlay, bcm, layouts, substrates, pass_bins))
    if not out:
        raise Rejected("no_bincode_map", "E142 file holds no SubstrateMap/Overlay/BinCodeMap", line=line_of(root))
    return out


def _read_overlay(smap: Element, overlay: Element, bcm: Element, layouts, substrates, pass_bins) -> WaferMap:
    s, o, b = attrs(smap), attrs(overlay), attrs(bcm)
    substrate_id = s.get("substrateid")
    what = f"E142 substrate map {substrate_id or '?'}"
    layout = _layout_for(s.get("layoutspecifier"), layouts)
    with located(layout):
        width, height = _dimension(layout)

    def_els = [el for d in children(bcm, "bindefinitions") for el in children(d, "bindefinition")]
    defs = [attrs(el) for el in def_els]
    null_codes = [b.get("nullbin")] + [d.get("bincode") for d in defs if (d.get("binquality") or "").lower() == "null"]
    null_codes = [c for c in null_codes if c]
    row_els = children(bcm, "bincode")
    rows = [(el.text or "").strip() for el in row_els]
    if height is not None and len(rows) != height:
        raise Rejected("row_count", f"{what}: layout Dimension Y is {height} but the BinCodeMap holds {len(rows)} "
                                    "BinCode rows")
    grid = decode_grid(rows, bin_type_of(b.get("bintype")), null_codes, width, what, [line_of(el) for el in row_els])
    h, w = grid.bins.shape

    with located(smap):   # the orientation attributes are on <SubstrateMap>
        origin, axes = _frame(s, what)
        bottom = _bottom_side(s.get("substrateside"), what)
        flat = degrees_to_flat(s.get("orientation"), f"{what} Orientation")
    fy, fx = np.nonzero(grid.bins >= 0)      # file coordinates: row index = y, code index = x
    bins = grid.bins[fy, fx]
    cx = fx if axes.endswith("Right") else w - 1 - fx
    if bottom:
        cx = w - 1 - cx
    cy = fy if axes.startswith("Down") else h - 1 - fy
    centre = (w // 2, h // 2) if origin == "Center" else (0, 0)

    verdicts, names, stated = bin_definitions(def_els, null_codes, grid.bin_type, skip_empty=True)

    refs = _reference_devices(overlay)
    substrate = substrates.get(substrate_id)
    extra = {**original_attrs(smap), **{f"Overlay.{k}": v for k, v in original_attrs(overlay).items()},
             **{f"BinCodeMap.{k}": v for k, v in original_attrs(bcm).items()},
             "bin_type": grid.bin_type, "axis_direction": axes, "origin_location": origin}
    if refs:
        extra["reference_devices"] = ";".join(f"{x},{y}" for x, y in refs)
    if substrate is not None:
        extra.update({f"Substrate.{local(c.tag)}": (c.text or "").strip() for c in substrate if (c.text or "").strip()})
    values, counts = np.unique(bins, return_counts=True)
    found = dict(zip(values.tolist(), counts.tolist()))
    bad = {k: n for k, n in stated.items() if found.get(k, 0) != n}
    if bad:
        extra["bin_count_mismatch"] = ";".join(f"{k}: file {n}, map {found.get(k, 0)}" for k, n in sorted(bad.items()))
    if bottom:
        flat = {"L": "R", "R": "L"}.get(flat, flat)
        extra["substrate_side"] = "BottomSide: drawn as seen from the top (x mirrored)"

    origin_die = None
    if refs:
        rx, ry = refs[0][0] + centre[0], refs[0][1] + centre[1]
        ox = rx if axes.endswith("Right") else w - 1 - rx
        origin_die = (w - 1 - ox if bottom else ox, ry if axes.startswith("Down") else h - 1 - ry)

    return WaferMap(
        format=FORMAT,
        x=cx.astype(np.int32),
        y=cy.astype(np.int32),
        bin=bins.astype(np.int32),
        retest_count=np.zeros(len(bins), dtype=np.int16),
        lot=child_text(substrate, "lotid") if substrate is not None else None,
        wafer=substrate_id,
        product=child_text(layout, "productid") if layout is not None else None,
        flat=flat or "D",
        die_size=_size_mm(layout),
        origin=origin_die,
        bin_pass=merge_verdicts(verdicts, values.tolist(), pass_bins),
        bin_names=names,
        extra=extra,
        orig_x=(fx - centre[0]).astype(np.int32),
        orig_y=(fy - centre[1]).astype(np.int32),
        rows_read=int(len(bins)),
    )


def _layout_for(specifier: str | None, layouts: dict) -> Element | None:
    # "WaferLayout/Devices": the map is laid out on the last layout of the path.
    if specifier:
        return layouts.get(specifier.strip().split("/")[-1])
    # No specifier: the innermost layout (one that has no child layouts).
    leaves = [el for el in layouts.values() if not list(descendants(el, "childlayout"))]
    return leaves[0] if len(leaves) == 1 else None


def _dimension(layout: Element | None) -> tuple[int | None, int | None]:
    if layout is None:
        return None, None
    for dim in children(layout, "dimension"):
        a = attrs(dim)
        what = f"E142 Layout {quote(attrs(layout).get('layoutid'))} Dimension"
        if "x" not in a or "y" not in a:
            raise Rejected("bad_header", f"{what} needs integer X and Y")
        return (parse_int(a["x"], f"{what} X", lo=0, reason="bad_header"),
                parse_int(a["y"], f"{what} Y", lo=0, reason="bad_header"))
    return None, None


def _frame(s: dict[str, str], what: str) -> tuple[str, str]:
    origin_raw = s.get("originlocation")
    origin = _ORIGINS.get((origin_raw or _DEFAULT_ORIGIN).strip().lower())
    if origin is None:
        raise Rejected("bad_orientation", f"{what}: unknown OriginLocation {quote(origin_raw)}")
    axes_raw = s.get("axisdirection")
    if axes_raw is None or not axes_raw.strip():
        return origin, _DEFAULT_AXES
    axes = _AXES.get(axes_raw.strip().lower())
    if axes is None:
        raise Rejected("bad_orientation", f"{what}: unknown AxisDirection {quote(axes_raw)}")
    return origin, axes


def _bottom_side(value: str | None, what: str) -> bool:
    """SubstrateSide (E142-1 schema enumeration TopSide / BottomSide; absent = TopSide).

    A BottomSide map is laid out as the substrate is seen from below; seen from the
    top (the canonical drawing) its columns run the other way, so x is mirrored and a
    flat stated as LEFT / RIGHT in that view swaps sides. Rows keep their order.
    """
    word = (value or "").strip().lower()
    if word in ("", "topside", "top"):
        return False
    if word in ("bottomside", "bottom"):
        return True
    raise Rejected("bad_orientation", f"{what}: unknown SubstrateSide {quote(value)} (TopSide or BottomSide)")


def _size_mm(layout: Element | None) -> tuple[float, float] | None:
    if layout is None:
        return None
    default_units = attrs(layout).get("defaultunits", "mm")
    for name in ("devicesize", "stepsize"):
        for el in children(layout, name):
            a = attrs(el)
            factor = _UNITS_MM.get(a.get("units", default_units).strip().lower())
            x, y = finite_float(a.get("x")), finite_float(a.get("y"))
            if factor is not None and x is not None and y is not None:
                return x * factor, y * factor
    return None


def _reference_devices(overlay: Element) -> list[tuple[int, int]]:
    refs = []
    for ref in descendants(overlay, "referencedevice"):
        for c in children(ref, "coordinates"):
            a = attrs(c)
            if "x" in a and "y" in a:
                refs.append((parse_int(a["x"], "E142 ReferenceDevice Coordinates X", reason="bad_header"),
                             parse_int(a["y"], "E142 ReferenceDevice Coordinates Y", reason="bad_header")))
    return refs
