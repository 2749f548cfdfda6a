"""Record decoding, driven by ``records.py``.

* ``interpret``: one Numba field interpreter decodes every record type from its
  compiled field program (records.program) into two int64/int32 matrices, one row
  per record and one column per field: ``val`` holds the value (integers
  sign-extended, floats as their raw bits, strings / arrays / bit fields as the
  byte offset of their data) and ``aux`` holds -1 when the field is missing (past
  REC_LEN), else 0 for scalars, the length for strings and the element count for
  arrays. Truncation is monotonic: once a field does not fit, it and every later
  field are missing.
* ``columns``: vectorised conversion of those matrices to Arrow arrays.
* the default-data rule of PTR / MPR / FTR (``defaults`` / ``effective``), the
  part / wafer walk over the whole record index (``walk``) and the specialised PTR
  kernel (``ptr_decode``) live here too: no Python loop per record for PTR, MPR,
  FTR, PIR or PRR.

One module per concern, lower layers first (a module imports only those above it)::

    primitives   byte-level reads: U2 / U4 / U8, sized ints, GDR value sizes
    fields       the table-driven field interpreter (interpret)
    strings      UTF-8 / Latin-1 and Arrow string, binary, C1 arrays (string_array, text_array)
    arrays       array fields: list offsets, flattening kernels, Arrow lists
    gdr          GDR GEN_DATA values as JSON text, and the GDR's whole ``fields`` object
    columns      interpreter output -> one Arrow array per field (column, columns)
    testkeys     test number per record, distinct tests, test index per record
    defaults     the default-data rule (DefaultSpec, defaults, effective)
    walk         the part / wafer walk (walk, Walk)
    grouping     record ordinals grouped by record code
    ptr          the specialised PTR kernel (ptr_decode, PtrDecoded)
    same_arrays  the arrays stored once per test (FTR RTN_INDX.., MPR RTN_STAT): which, and "equal"
    overrides    per-test state and lists of the MPR / FTR kernels; override columns of PTR, MPR, FTR
    mpr, ftr     the specialised MPR / FTR kernels (mpr_chunk, ftr_chunk: result columns)
    prr          the specialised PRR decoder (prr_columns: the interpreter's columns, one pass)
    arrow        Arrow arrays over kernel output (null_array, fixed_array, nullable_int)

This package re-exports the names ``tables.py`` and the tests use.

Numba caching: every cached kernel here is a ``@kernel`` (``failmap_assets/kernels/jit.py``),
stamped with the content of its module and of every module of ours it imports, so a change
to ``primitives`` (or any helper) recompiles its callers; per-record helpers are ``@inlined``.
"""

from .arrow import fixed_array, null_array, nullable_int
from .columns import column, columns
from .defaults import DefaultSpec, defaults, effective
from .fields import interpret
from .gdr import gdr_objects
from .grouping import UNLISTED, group_by_code
from .ftr import ftr_chunk
from .mpr import mpr_chunk
from .overrides import Tests, chunk_bounds
from .prr import prr_columns
from .ptr import PTR_CHUNK_BYTES, PTR_DEFAULT_FIELDS, ptr_decode
from .strings import string_array, text_array
from .testkeys import test_keys
from .walk import Walk, walk

__all__ = [
    "DefaultSpec", "PTR_CHUNK_BYTES", "PTR_DEFAULT_FIELDS", "Walk", "column", "columns", "defaults", "effective",
    "fixed_array", "gdr_objects", "group_by_code", "UNLISTED", "interpret", "null_array", "nullable_int", "prr_columns", "ptr_decode",
    "string_array", "test_keys", "text_array", "walk", "Tests", "chunk_bounds", "ftr_chunk", "mpr_chunk",
]
