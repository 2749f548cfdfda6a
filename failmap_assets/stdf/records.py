"""The one table of STDF record layouts: record type -> fields and their types.

Everything else is driven from here: the Numba field interpreter in ``decode/fields.py``
(through the compiled "field programs" below), the Arrow schemas of the output
tables in ``tables.py``, the default-data rule of PTR / MPR / FTR and the column
documentation in ``SCHEMA.md``.

Field types (STDF V4 / V4-2007 data type codes):

=====  ==========================================  ======================
code   meaning                                     Arrow
=====  ==========================================  ======================
U1-U8  unsigned integer, 1/2/4/8 bytes             uint8 .. uint64
I1-I8  signed integer                              int8 .. int64
R4 R8  IEEE float                                  float32 / float64
C1     one character                               string
B1     one byte of flags                           uint8
Cn     string, U1 length prefix                    string
Sn     string, U2 length prefix (V4-2007)          string
Bn     bytes, U1 length prefix                     binary
Dn     bit field, U2 bit-count prefix              binary (the data bytes)
N1     nibble (arrays only, two per byte)          uint8
Vn     GDR typed value (arrays only)               JSON in ``generic``
Uf Cf  unsigned int / fixed string whose width is  uint64 / string
       given by another field (STR only)
=====  ==========================================  ======================

An array field names the field holding its element count (``kx`` in the spec):
``N1[RTN_ICNT]``; STR's variable-width arrays also name their width field:
``Uf[CYC_CNT:CYC_SIZE]``.

Text is decoded as UTF-8 when the bytes are valid UTF-8, otherwise as Latin-1
(STDF says ASCII; real files carry the odd degree sign or umlaut).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

# ---------------------------------------------------------------- type codes

T_U1, T_U2, T_U4, T_U8 = 1, 2, 3, 4
T_I1, T_I2, T_I4, T_I8 = 5, 6, 7, 8
T_R4, T_R8 = 9, 10
T_C1, T_B1 = 11, 12
T_CN, T_SN, T_BN, T_DN = 13, 14, 15, 16
T_N1, T_VN, T_UF, T_CF = 17, 18, 19, 20

TYPE_CODES: dict[str, int] = {
    "U1": T_U1, "U2": T_U2, "U4": T_U4, "U8": T_U8,
    "I1": T_I1, "I2": T_I2, "I4": T_I4, "I8": T_I8,
    "R4": T_R4, "R8": T_R8, "C1": T_C1, "B1": T_B1,
    "Cn": T_CN, "Sn": T_SN, "Bn": T_BN, "Dn": T_DN,
    "N1": T_N1, "Vn": T_VN, "Uf": T_UF, "Cf": T_CF,
}

# Size in bytes of one fixed-size value (0: variable / not fixed).
FIXED_SIZE: dict[str, int] = {
    "U1": 1, "U2": 2, "U4": 4, "U8": 8, "I1": 1, "I2": 2, "I4": 4, "I8": 8,
    "R4": 4, "R8": 8, "C1": 1, "B1": 1,
}

NUMERIC_ARROW: dict[str, pa.DataType] = {
    "U1": pa.uint8(), "U2": pa.uint16(), "U4": pa.uint32(), "U8": pa.uint64(),
    "I1": pa.int8(), "I2": pa.int16(), "I4": pa.int32(), "I8": pa.int64(),
    "R4": pa.float32(), "R8": pa.float64(), "B1": pa.uint8(), "N1": pa.uint8(),
    "Uf": pa.uint64(),
}

NUMPY_DTYPE: dict[str, np.dtype] = {
    "U1": np.dtype(np.uint8), "U2": np.dtype(np.uint16), "U4": np.dtype(np.uint32),
    "U8": np.dtype(np.uint64), "I1": np.dtype(np.int8), "I2": np.dtype(np.int16),
    "I4": np.dtype(np.int32), "I8": np.dtype(np.int64), "R4": np.dtype(np.float32),
    "R8": np.dtype(np.float64), "B1": np.dtype(np.uint8), "N1": np.dtype(np.uint8),
    "Uf": np.dtype(np.uint64),
}


# ------------------------------------------------------------- default data

@dataclass(frozen=True)
class Default:
    """How a field of PTR / MPR / FTR takes part in the default-data rule.

    The first record of a test number sets the default; a later record uses its own
    value when present, else the default. ``use_default_bit``: an OPT_FLAG bit that
    says "this record's value is invalid, use the default"; ``none_bit``: an OPT_FLAG
    bit that says "there is no value" (e.g. no low limit) -- the effective value is
    null. ``blank``: a value that means "not given" (PATG_NUM 255); strings and arrays
    are blank when empty, and a string of one NUL byte means "override with null".
    """

    use_default_bit: int = -1
    none_bit: int = -1
    blank: int | None = None


# -------------------------------------------------------------------- fields

@dataclass(frozen=True)
class Field:
    name: str
    type: str                 # "U1", "Cn", ... (element type for arrays)
    desc: str
    count: str | None = None  # array: name of the field holding the element count
    width: str | None = None  # Uf / Cf arrays: name of the field holding the width
    default: Default | None = None
    missing: str | None = None  # the spec's missing/invalid marker, for the docs

    @property
    def is_array(self) -> bool:
        return self.count is not None

    @property
    def column(self) -> str:
        return self.name.lower()

    def arrow_type(self) -> pa.DataType:
        key = (self.type, self.is_array)
        typ = _ARROW_TYPES.get(key)
        if typ is None:        # one object per type: callers key caches by it
            base = _scalar_arrow(self.type)
            typ = _ARROW_TYPES[key] = pa.list_(base) if self.is_array else base
        return typ

    @property
    def spec_type(self) -> str:
        if self.count is None:
            return self.type
        if self.width is not None:
            return f"kx{self.type}[{self.count}; width {self.width}]"
        return f"kx{self.type}[{self.count}]"


_ARROW_TYPES: dict[tuple[str, bool], pa.DataType] = {}


def _scalar_arrow(t: str) -> pa.DataType:
    if t in NUMERIC_ARROW:
        return NUMERIC_ARROW[t]
    if t in ("C1", "Cn", "Sn", "Cf"):
        return pa.string()
    if t in ("Bn", "Dn"):
        return pa.binary()
    if t == "Vn":
        return pa.string()  # JSON text
    raise KeyError(t)


@dataclass(frozen=True)
class RecordDef:
    name: str
    typ: int
    sub: int
    title: str
    fields: tuple[Field, ...]
    version: str = "V4"          # "V4" or "V4-2007"
    table: str = "generic"      # which output table the record lands in
    alt_fields: tuple[Field, ...] | None = None  # a second layout seen in the wild (VUR)
    head_site_at: int = -1      # byte offset of HEAD_NUM (SITE_NUM follows) in fixed prefix

    @property
    def key(self) -> tuple[int, int]:
        return (self.typ, self.sub)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name}")

    def index(self, name: str) -> int:
        for i, f in enumerate(self.fields):
            if f.name == name:
                return i
        raise KeyError(f"{self.name} has no field {name}")

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]


def _parse(spec: str, defaults: dict[str, Default] | None = None) -> tuple[Field, ...]:
    """Fields from lines ``NAME TYPE[COUNT[:WIDTH]] description  (missing: x)``."""
    defaults = defaults or {}
    out = []
    for line in spec.strip().splitlines():
        line = line.strip()
        if not line:
            continue
        name, typ, *rest = line.split(None, 2)
        desc = rest[0] if rest else ""
        missing = None
        if "(missing:" in desc:
            desc, _, m = desc.partition("(missing:")
            missing = m.rstrip(")").strip()
            desc = desc.strip()
        count = width = None
        if "[" in typ:
            typ, _, arr = typ.partition("[")
            arr = arr.rstrip("]")
            count, _, width = arr.partition(":")
            width = width or None
        if typ not in TYPE_CODES:
            raise ValueError(f"unknown STDF type {typ} in {line!r}")
        out.append(Field(name, typ, desc, count, width, defaults.get(name), missing))
    return tuple(out)


# Default-data roles, from the PTR / MPR / FTR "Default Data" and OPT_FLAG notes.
_PARAM_DEFAULTS = {
    "RES_SCAL": Default(use_default_bit=0),
    "LLM_SCAL": Default(use_default_bit=4, none_bit=6),
    "HLM_SCAL": Default(use_default_bit=5, none_bit=7),
    "LO_LIMIT": Default(use_default_bit=4, none_bit=6),
    "HI_LIMIT": Default(use_default_bit=5, none_bit=7),
    "UNITS": Default(),
    "C_RESFMT": Default(),
    "C_LLMFMT": Default(),
    "C_HLMFMT": Default(),
    "LO_SPEC": Default(none_bit=2),
    "HI_SPEC": Default(none_bit=3),
}
_MPR_DEFAULTS = {
    **_PARAM_DEFAULTS,
    "START_IN": Default(use_default_bit=1),
    "INCR_IN": Default(use_default_bit=1),
    "RTN_INDX": Default(),
    "UNITS_IN": Default(),
}
_FTR_DEFAULTS = {
    "PATG_NUM": Default(blank=255),
    "SPIN_MAP": Default(),
}


RECORDS: tuple[RecordDef, ...] = (
    # ------------------------------------------------ type 0: file information
    RecordDef("FAR", 0, 10, "File Attributes Record", _parse("""
        CPU_TYPE U1 CPU type that wrote this file (1 = big-endian Sun, 2 = little-endian PC, 0 = VAX)
        STDF_VER U1 STDF version number (4)
    """), table="files"),
    RecordDef("ATR", 0, 20, "Audit Trail Record", _parse("""
        MOD_TIM U4 Date and time of STDF file modification (Unix seconds)
        CMD_LINE Cn Command line of program
    """)),
    RecordDef("VUR", 0, 30, "Version Update Record", _parse("""
        UPD_CNT U1 Count of version update names (null in the single-name layout)
        UPD_NAM Cn[UPD_CNT] Version update names, e.g. V4-2007, Scan:2007.1
    """), version="V4-2007", alt_fields=_parse("""
        UPD_NAM Cn Version update name (original V4-2007 layout: one name)
    """)),
    # ------------------------------------------------ type 1: per lot
    RecordDef("MIR", 1, 10, "Master Information Record", _parse("""
        SETUP_T U4 Date and time of job setup (Unix seconds)
        START_T U4 Date and time first part tested (Unix seconds)
        STAT_NUM U1 Tester station number
        MODE_COD C1 Test mode code (e.g. prod, dev) (missing: space)
        RTST_COD C1 Lot retest code (missing: space)
        PROT_COD C1 Data protection code (missing: space)
        BURN_TIM U2 Burn-in time in minutes (missing: 65535)
        CMOD_COD C1 Command mode code (missing: space)
        LOT_ID Cn Lot ID (customer specified)
        PART_TYP Cn Part type (or product ID)
        NODE_NAM Cn Name of node that generated data
        TSTR_TYP Cn Tester type
        JOB_NAM Cn Job name (test program name)
        JOB_REV Cn Job (test program) revision number
        SBLOT_ID Cn Sublot ID
        OPER_NAM Cn Operator name or ID (at setup time)
        EXEC_TYP Cn Tester executive software type
        EXEC_VER Cn Tester exec software version number
        TEST_COD Cn Test phase or step code
        TST_TEMP Cn Test temperature
        USER_TXT Cn Generic user text
        AUX_FILE Cn Name of auxiliary data file
        PKG_TYP Cn Package type
        FAMLY_ID Cn Product family ID
        DATE_COD Cn Date code
        FACIL_ID Cn Test facility ID
        FLOOR_ID Cn Test floor ID
        PROC_ID Cn Fabrication process ID
        OPER_FRQ Cn Operation frequency or step
        SPEC_NAM Cn Test specification name
        SPEC_VER Cn Test specification version number
        FLOW_ID Cn Test flow ID
        SETUP_ID Cn Test setup ID
        DSGN_REV Cn Device design revision
        ENG_ID Cn Engineering lot ID
        ROM_COD Cn ROM code ID
        SERL_NUM Cn Tester serial number
        SUPR_NAM Cn Supervisor name or ID
    """), table="files"),
    RecordDef("MRR", 1, 20, "Master Results Record", _parse("""
        FINISH_T U4 Date and time last part tested (Unix seconds)
        DISP_COD C1 Lot disposition code (missing: space)
        USR_DESC Cn Lot description supplied by user
        EXC_DESC Cn Lot description supplied by exec
    """), table="files"),
    RecordDef("PCR", 1, 30, "Part Count Record", _parse("""
        HEAD_NUM U1 Test head number (255 = all heads)
        SITE_NUM U1 Test site number
        PART_CNT U4 Number of parts tested
        RTST_CNT U4 Number of parts retested (missing: 4294967295)
        ABRT_CNT U4 Number of aborts during testing (missing: 4294967295)
        GOOD_CNT U4 Number of good (passed) parts tested (missing: 4294967295)
        FUNC_CNT U4 Number of functional parts tested (missing: 4294967295)
    """)),
    RecordDef("HBR", 1, 40, "Hardware Bin Record", _parse("""
        HEAD_NUM U1 Test head number (255 = all heads)
        SITE_NUM U1 Test site number
        HBIN_NUM U2 Hardware bin number
        HBIN_CNT U4 Number of parts in bin
        HBIN_PF C1 Pass/fail indication P or F (missing: space)
        HBIN_NAM Cn Name of hardware bin
    """), table="bins"),
    RecordDef("SBR", 1, 50, "Software Bin Record", _parse("""
        HEAD_NUM U1 Test head number (255 = all heads)
        SITE_NUM U1 Test site number
        SBIN_NUM U2 Software bin number
        SBIN_CNT U4 Number of parts in bin
        SBIN_PF C1 Pass/fail indication P or F (missing: space)
        SBIN_NAM Cn Name of software bin
    """), table="bins"),
    RecordDef("PMR", 1, 60, "Pin Map Record", _parse("""
        PMR_INDX U2 Unique index associated with pin
        CHAN_TYP U2 Channel type
        CHAN_NAM Cn Channel name
        PHY_NAM Cn Physical name of pin
        LOG_NAM Cn Logical name of pin
        HEAD_NUM U1 Head number associated with channel
        SITE_NUM U1 Site number associated with channel
    """)),
    RecordDef("PGR", 1, 62, "Pin Group Record", _parse("""
        GRP_INDX U2 Unique index associated with pin group
        GRP_NAM Cn Name of pin group
        INDX_CNT U2 Count of PMR indexes
        PMR_INDX U2[INDX_CNT] Array of indexes for pins in the group
    """)),
    RecordDef("PLR", 1, 63, "Pin List Record", _parse("""
        GRP_CNT U2 Count of pins or pin groups
        GRP_INDX U2[GRP_CNT] Array of pin or pin group indexes
        GRP_MODE U2[GRP_CNT] Operating mode of pin group
        GRP_RADX U1[GRP_CNT] Display radix of pin group
        PGM_CHAR Cn[GRP_CNT] Program state encoding characters
        RTN_CHAR Cn[GRP_CNT] Return state encoding characters
        PGM_CHAL Cn[GRP_CNT] Program state encoding characters (left)
        RTN_CHAL Cn[GRP_CNT] Return state encoding characters (left)
    """)),
    RecordDef("RDR", 1, 70, "Retest Data Record", _parse("""
        NUM_BINS U2 Number of bins being retested
        RTST_BIN U2[NUM_BINS] Array of retest bin numbers
    """)),
    RecordDef("SDR", 1, 80, "Site Description Record", _parse("""
        HEAD_NUM U1 Test head number
        SITE_GRP U1 Site group number
        SITE_CNT U1 Number of test sites in site group
        SITE_NUM U1[SITE_CNT] Array of test site numbers
        HAND_TYP Cn Handler or prober type
        HAND_ID Cn Handler or prober ID
        CARD_TYP Cn Probe card type
        CARD_ID Cn Probe card ID
        LOAD_TYP Cn Load board type
        LOAD_ID Cn Load board ID
        DIB_TYP Cn DIB board type
        DIB_ID Cn DIB board ID
        CABL_TYP Cn Interface cable type
        CABL_ID Cn Interface cable ID
        CONT_TYP Cn Handler contactor type
        CONT_ID Cn Handler contactor ID
        LASR_TYP Cn Laser type
        LASR_ID Cn Laser ID
        EXTR_TYP Cn Extra equipment type field
        EXTR_ID Cn Extra equipment ID
    """), table="files"),
    RecordDef("PSR", 1, 90, "Pattern Sequence Record", _parse("""
        CONT_FLG B1 Continuation PSR record follows if not 0
        PSR_INDX U2 PSR record index (used by STR records)
        PSR_NAM Cn Symbolic name of PSR record
        OPT_FLG B1 Optional data flag
        TOTP_CNT U2 Count of total pattern file information sets in the complete PSR data set
        LOCP_CNT U2 Count of pattern file information sets in this record
        PAT_BGN U8[LOCP_CNT] Array of cycle numbers patterns begin on
        PAT_END U8[LOCP_CNT] Array of cycle numbers patterns stop at
        PAT_FILE Cn[LOCP_CNT] Array of pattern file names
        PAT_LBL Cn[LOCP_CNT] Optional pattern symbolic names
        FILE_UID Cn[LOCP_CNT] Optional array of file identifier codes
        ATPG_DSC Cn[LOCP_CNT] Optional array of ATPG information
        SRC_ID Cn[LOCP_CNT] Optional array of PatternInSrcFileID
    """), version="V4-2007"),
    RecordDef("NMR", 1, 91, "Name Map Record", _parse("""
        CONT_FLG B1 Continuation NMR record follows if not 0
        TOTM_CNT U2 Count of PMR indexes and ATPG_NAM entries
        LOCM_CNT U2 Count of PMR indexes and ATPG_NAM entries in this record
        PMR_INDX U2[LOCM_CNT] Array of PMR indexes
        ATPG_NAM Cn[LOCM_CNT] Array of ATPG signal names
    """), version="V4-2007"),
    RecordDef("CNR", 1, 92, "Cell Name Record", _parse("""
        CHN_NUM U2 Chain number (referenced by STR CHN_NUM)
        BIT_POS U4 Bit position in the chain
        CELL_NAM Sn Scan cell name
    """), version="V4-2007"),
    RecordDef("SSR", 1, 93, "Scan Structure Record", _parse("""
        SSR_NAM Cn Name of the STIL scan structure
        CHN_CNT U2 Count of chains listed in CHN_LIST
        CHN_LIST U2[CHN_CNT] Array of CDR indexes
    """), version="V4-2007"),
    RecordDef("CDR", 1, 94, "Chain Description Record", _parse("""
        CONT_FLG B1 Continuation CDR record follows if not 0
        CDR_INDX U2 CDR index
        CHN_NAM Cn Chain name
        CHN_LEN U4 Chain length (number of scan cells)
        SIN_PIN U2 PMR index of the chain's scan-in signal
        SOUT_PIN U2 PMR index of the chain's scan-out signal
        MSTR_CNT U1 Count of master clock pins
        M_CLKS U2[MSTR_CNT] PMR indexes of the master clocks
        SLAV_CNT U1 Count of slave clock pins
        S_CLKS U2[SLAV_CNT] PMR indexes of the slave clocks
        INV_VAL U1 0 no inversion, 1 inversion (missing: 255)
        LST_CNT U2 Count of scan cells listed in this record
        CELL_LST Sn[LST_CNT] Array of scan cell names
    """), version="V4-2007"),
    # ------------------------------------------------ type 2: per wafer
    RecordDef("WIR", 2, 10, "Wafer Information Record", _parse("""
        HEAD_NUM U1 Test head number
        SITE_GRP U1 Site group number (missing: 255)
        START_T U4 Date and time first part tested (Unix seconds)
        WAFER_ID Cn Wafer ID
    """), table="wafers"),
    RecordDef("WRR", 2, 20, "Wafer Results Record", _parse("""
        HEAD_NUM U1 Test head number
        SITE_GRP U1 Site group number (missing: 255)
        FINISH_T U4 Date and time last part tested (Unix seconds)
        PART_CNT U4 Number of parts tested
        RTST_CNT U4 Number of parts retested (missing: 4294967295)
        ABRT_CNT U4 Number of aborts during testing (missing: 4294967295)
        GOOD_CNT U4 Number of good (passed) parts tested (missing: 4294967295)
        FUNC_CNT U4 Number of functional parts tested (missing: 4294967295)
        WAFER_ID Cn Wafer ID
        FABWF_ID Cn Fab wafer ID
        FRAME_ID Cn Wafer frame ID
        MASK_ID Cn Wafer mask ID
        USR_DESC Cn Wafer description supplied by user
        EXC_DESC Cn Wafer description supplied by exec
    """), table="wafers"),
    RecordDef("WCR", 2, 30, "Wafer Configuration Record", _parse("""
        WAFR_SIZ R4 Diameter of wafer in WF_UNITS (missing: 0)
        DIE_HT R4 Height of die in WF_UNITS (missing: 0)
        DIE_WID R4 Width of die in WF_UNITS (missing: 0)
        WF_UNITS U1 Units: 0 unknown, 1 inches, 2 cm, 3 mm, 4 mils
        WF_FLAT C1 Orientation of wafer flat: U, D, L, R (missing: space)
        CENTER_X I2 X coordinate of center die on wafer (missing: -32768)
        CENTER_Y I2 Y coordinate of center die on wafer (missing: -32768)
        POS_X C1 Positive X direction: L or R (missing: space)
        POS_Y C1 Positive Y direction: U or D (missing: space)
    """), table="wafers"),
    # ------------------------------------------------ type 5: per part
    RecordDef("PIR", 5, 10, "Part Information Record", _parse("""
        HEAD_NUM U1 Test head number
        SITE_NUM U1 Test site number
    """), table="parts", head_site_at=0),
    RecordDef("PRR", 5, 20, "Part Results Record", _parse("""
        HEAD_NUM U1 Test head number
        SITE_NUM U1 Test site number
        PART_FLG B1 Part flags: bit0/1 supersedes same PART_ID / same X,Y; bit2 abnormal end; bit3 failed; bit4 no pass/fail indication
        NUM_TEST U2 Number of tests executed
        HARD_BIN U2 Hardware bin number
        SOFT_BIN U2 Software bin number (missing: 65535)
        X_COORD I2 Wafer X coordinate (missing: -32768)
        Y_COORD I2 Wafer Y coordinate (missing: -32768)
        TEST_T U4 Elapsed test time in milliseconds (missing: 0)
        PART_ID Cn Part identification
        PART_TXT Cn Part description text
        PART_FIX Bn Part repair information
    """), table="parts", head_site_at=0),
    # ------------------------------------------------ type 10: per test
    RecordDef("TSR", 10, 30, "Test Synopsis Record", _parse("""
        HEAD_NUM U1 Test head number (255 = all heads)
        SITE_NUM U1 Test site number
        TEST_TYP C1 Test type: P parametric, F functional, M multiple-result, S scan, space unknown
        TEST_NUM U4 Test number
        EXEC_CNT U4 Number of test executions (missing: 4294967295)
        FAIL_CNT U4 Number of test failures (missing: 4294967295)
        ALRM_CNT U4 Number of alarmed tests (missing: 4294967295)
        TEST_NAM Cn Test name
        SEQ_NAME Cn Sequencer (program segment/flow) name
        TEST_LBL Cn Test label or text
        OPT_FLAG B1 Optional data flag (bits set = TEST_TIM, TEST_MIN, TEST_MAX, TST_SUMS, TST_SQRS invalid)
        TEST_TIM R4 Average test execution time in seconds
        TEST_MIN R4 Lowest test result value
        TEST_MAX R4 Highest test result value
        TST_SUMS R4 Sum of test result values
        TST_SQRS R4 Sum of squares of test result values
    """), table="test_summaries"),
    # ------------------------------------------------ type 15: per test execution
    RecordDef("PTR", 15, 10, "Parametric Test Record", _parse("""
        TEST_NUM U4 Test number
        HEAD_NUM U1 Test head number
        SITE_NUM U1 Test site number
        TEST_FLG B1 Test flags: bit0 alarm, bit1 RESULT invalid, bit2 unreliable, bit3 timeout, bit4 not executed, bit5 aborted, bit6 no pass/fail, bit7 failed
        PARM_FLG B1 Parametric test flags (scale error, drift, oscillation, high, low, ...)
        RESULT R4 Test result
        TEST_TXT Cn Test description text or label
        ALARM_ID Cn Name of alarm
        OPT_FLAG B1 Optional data flag (see default data)
        RES_SCAL I1 Test results scaling exponent
        LLM_SCAL I1 Low limit scaling exponent
        HLM_SCAL I1 High limit scaling exponent
        LO_LIMIT R4 Low test limit value
        HI_LIMIT R4 High test limit value
        UNITS Cn Test units
        C_RESFMT Cn ANSI C result format string
        C_LLMFMT Cn ANSI C low limit format string
        C_HLMFMT Cn ANSI C high limit format string
        LO_SPEC R4 Low specification limit value
        HI_SPEC R4 High specification limit value
    """, _PARAM_DEFAULTS), table="ptr_results", head_site_at=4),
    RecordDef("MPR", 15, 15, "Multiple-Result Parametric Record", _parse("""
        TEST_NUM U4 Test number
        HEAD_NUM U1 Test head number
        SITE_NUM U1 Test site number
        TEST_FLG B1 Test flags (as PTR; bit1 reserved)
        PARM_FLG B1 Parametric test flags
        RTN_ICNT U2 Count of PMR indexes
        RSLT_CNT U2 Count of returned results
        RTN_STAT N1[RTN_ICNT] Array of returned states
        RTN_RSLT R4[RSLT_CNT] Array of returned results
        TEST_TXT Cn Descriptive text or label
        ALARM_ID Cn Name of alarm
        OPT_FLAG B1 Optional data flag (see default data)
        RES_SCAL I1 Test result scaling exponent
        LLM_SCAL I1 Test low limit scaling exponent
        HLM_SCAL I1 Test high limit scaling exponent
        LO_LIMIT R4 Test low limit value
        HI_LIMIT R4 Test high limit value
        START_IN R4 Starting input value (condition)
        INCR_IN R4 Increment of input condition
        RTN_INDX U2[RTN_ICNT] Array of PMR indexes
        UNITS Cn Units of returned results
        UNITS_IN Cn Input condition units
        C_RESFMT Cn ANSI C result format string
        C_LLMFMT Cn ANSI C low limit format string
        C_HLMFMT Cn ANSI C high limit format string
        LO_SPEC R4 Low specification limit value
        HI_SPEC R4 High specification limit value
    """, _MPR_DEFAULTS), table="mpr_results", head_site_at=4),
    RecordDef("FTR", 15, 20, "Functional Test Record", _parse("""
        TEST_NUM U4 Test number
        HEAD_NUM U1 Test head number
        SITE_NUM U1 Test site number
        TEST_FLG B1 Test flags (fail, alarm, etc.)
        OPT_FLAG B1 Optional data flag: bits set = CYCL_CNT, REL_VADR, REPT_CNT, NUM_FAIL, X/YFAIL_AD, VECT_OFF invalid
        CYCL_CNT U4 Cycle count of vector
        REL_VADR U4 Relative vector address
        REPT_CNT U4 Repeat count of vector
        NUM_FAIL U4 Number of pins with 1 or more failures
        XFAIL_AD I4 X logical device failure address
        YFAIL_AD I4 Y logical device failure address
        VECT_OFF I2 Offset from vector of interest
        RTN_ICNT U2 Count of return data PMR indexes
        PGM_ICNT U2 Count of programmed state indexes
        RTN_INDX U2[RTN_ICNT] Array of return data PMR indexes
        RTN_STAT N1[RTN_ICNT] Array of returned states
        PGM_INDX U2[PGM_ICNT] Array of programmed state indexes
        PGM_STAT N1[PGM_ICNT] Array of programmed states
        FAIL_PIN Dn Failing pin bitfield (bit i = PMR index i)
        VECT_NAM Cn Vector module pattern name
        TIME_SET Cn Time set name
        OP_CODE Cn Vector op code
        TEST_TXT Cn Descriptive text or label
        ALARM_ID Cn Name of alarm
        PROG_TXT Cn Additional programmed information
        RSLT_TXT Cn Additional result information
        PATG_NUM U1 Pattern generator number (missing: 255)
        SPIN_MAP Dn Bit map of enabled comparators
    """, _FTR_DEFAULTS), table="ftr_results", head_site_at=4),
    RecordDef("STR", 15, 30, "Scan Test Record", _parse("""
        CONT_FLG B1 Continuation STR follows if not 0
        TEST_NUM U4 Test number
        HEAD_NUM U1 Test head number
        SITE_NUM U1 Test site number
        PSR_REF U2 PSR index (Pattern Sequence Record)
        TEST_FLG B1 Test flags (fail, alarm, etc.)
        LOG_TYP Cn User defined description of datalog
        TEST_TXT Cn Descriptive text or label
        ALARM_ID Cn Name of alarm
        PROG_TXT Cn Additional programmed information
        RSLT_TXT Cn Additional result information
        Z_VAL U1 Z handling flag
        FMU_FLG B1 MASK_MAP and FAL_MAP field status and pattern changed flag
        MASK_MAP Dn Bit map of globally masked pins
        FAL_MAP Dn Bit map of failures after buffer full
        CYC_CNT_T U8 Total cycles executed in test
        TOTF_CNT U4 Total failures (pin x cycle) detected in test execution
        TOTL_CNT U4 Total fails logged across the complete STR data set
        CYC_BASE U8 Cycle offset to apply for the values in the CYC_OFST array
        BIT_BASE U4 Offset to apply for the values in the BIT_POS array
        COND_CNT U2 Count of test conditions and optional data specifications
        LIM_CNT U2 Count of LIM arrays in present record
        CYC_SIZE U1 Size in bytes (1, 2, 4 or 8) of CYC_OFST values
        PMR_SIZE U1 Size in bytes (1 or 2) of PMR_INDX values
        CHN_SIZE U1 Size in bytes (1, 2 or 4) of CHN_NUM values
        PAT_SIZE U1 Size in bytes (1, 2 or 4) of PAT_NUM values
        BIT_SIZE U1 Size in bytes (1, 2 or 4) of BIT_POS values
        U1_SIZE U1 Size in bytes (1, 2, 4 or 8) of USR1 values
        U2_SIZE U1 Size in bytes (1, 2, 4 or 8) of USR2 values
        U3_SIZE U1 Size in bytes (1, 2, 4 or 8) of USR3 values
        UTX_SIZE U1 Size in bytes of each USER_TXT string
        CAP_BGN U2 Offset added to BIT_POS value to indicate capture cycles
        LIM_INDX U2[LIM_CNT] Array of PMR indexes that require unique limit specifications
        LIM_SPEC U4[LIM_CNT] Array of fail datalogging limits for the PMRs in LIM_INDX
        COND_LST Cn[COND_CNT] Array of test condition (name=value) pairs
        CYC_CNT U2 Count of entries in CYC_OFST
        CYC_OFST Uf[CYC_CNT:CYC_SIZE] Array of cycle numbers relative to CYC_BASE
        PMR_CNT U2 Count of entries in PMR_INDX
        PMR_INDX Uf[PMR_CNT:PMR_SIZE] Array of PMR indexes
        CHN_CNT U2 Count of entries in CHN_NUM
        CHN_NUM Uf[CHN_CNT:CHN_SIZE] Array of chain numbers
        EXP_CNT U2 Count of EXP_DATA entries
        EXP_DATA U1[EXP_CNT] Array of expected vector data
        CAP_CNT U2 Count of CAP_DATA entries
        CAP_DATA U1[CAP_CNT] Array of captured data
        NEW_CNT U2 Count of NEW_DATA entries
        NEW_DATA U1[NEW_CNT] Array of new vector data
        PAT_CNT U2 Count of PAT_NUM entries
        PAT_NUM Uf[PAT_CNT:PAT_SIZE] Array of pattern numbers
        BPOS_CNT U2 Count of BIT_POS entries
        BIT_POS Uf[BPOS_CNT:BIT_SIZE] Array of chain bit positions
        USR1_CNT U2 Count of USR1 entries
        USR1 Uf[USR1_CNT:U1_SIZE] Array of user defined data for each logged fail
        USR2_CNT U2 Count of USR2 entries
        USR2 Uf[USR2_CNT:U2_SIZE] Array of user defined data for each logged fail
        USR3_CNT U2 Count of USR3 entries
        USR3 Uf[USR3_CNT:U3_SIZE] Array of user defined data for each logged fail
        TXT_CNT U2 Count of USER_TXT entries
        USER_TXT Cf[TXT_CNT:UTX_SIZE] Array of user defined fixed-length strings for each logged fail
    """), version="V4-2007", head_site_at=5),
    # ------------------------------------------------ type 20: per program segment
    RecordDef("BPS", 20, 10, "Begin Program Section Record", _parse("""
        SEQ_NAME Cn Program section (or sequencer) name
    """)),
    RecordDef("EPS", 20, 20, "End Program Section Record", ()),
    # ------------------------------------------------ type 50: generic data
    RecordDef("GDR", 50, 10, "Generic Data Record", _parse("""
        FLD_CNT U2 Count of data fields in record
        GEN_DATA Vn[FLD_CNT] Typed data fields: JSON list of [type, value] (type 0 = pad byte)
    """)),
    RecordDef("DTR", 50, 30, "Datalog Text Record", _parse("""
        TEXT_DAT Cn ASCII text string
    """)),
)

BY_NAME: dict[str, RecordDef] = {r.name: r for r in RECORDS}
BY_KEY: dict[tuple[int, int], RecordDef] = {r.key: r for r in RECORDS}

# Record types the spec reserves (kept raw in ``generic`` like any unknown type).
RESERVED_TYPES = {180: "RESERVED_IMAGE", 181: "RESERVED_IG900"}

# Small integer code per record type: 0 = unknown, then RECORDS order + 1.
CODE: dict[str, int] = {r.name: i + 1 for i, r in enumerate(RECORDS)}
NAME_OF_CODE: list[str] = ["UNKNOWN"] + [r.name for r in RECORDS]


def code_table() -> np.ndarray:
    """uint8[65536]: (REC_TYP << 8 | REC_SUB) -> record code (0 unknown)."""
    t = np.zeros(65536, dtype=np.uint8)
    for r in RECORDS:
        t[(r.typ << 8) | r.sub] = CODE[r.name]
    return t


def record_name(typ: int, sub: int) -> str:
    r = BY_KEY.get((typ, sub))
    if r is not None:
        return r.name
    if typ in RESERVED_TYPES:
        return RESERVED_TYPES[typ]
    return "UNKNOWN"


@dataclass(frozen=True)
class FieldProgram:
    """A record layout compiled for the Numba field interpreter."""

    ftype: np.ndarray   # int32 type code per field
    fcount: np.ndarray  # int32 index of the count field, -1 when scalar
    fwidth: np.ndarray  # int32 index of the width field, -1 when none
    fsize: np.ndarray   # int32 fixed element size in bytes, 0 when variable


def _compile(fields: tuple[Field, ...]) -> FieldProgram:
    names = [f.name for f in fields]
    ftype = np.array([TYPE_CODES[f.type] for f in fields], dtype=np.int32)
    fcount = np.array([names.index(f.count) if f.count else -1 for f in fields], dtype=np.int32)
    fwidth = np.array([names.index(f.width) if f.width else -1 for f in fields], dtype=np.int32)
    fsize = np.array([FIXED_SIZE.get(f.type, 0) for f in fields], dtype=np.int32)
    for i, f in enumerate(fields):
        if f.count and names.index(f.count) >= i:
            raise ValueError(f"count field {f.count} must precede {f.name}")
    return FieldProgram(ftype, fcount, fwidth, fsize)


_PROGRAMS: dict[tuple[str, bool], FieldProgram] = {}


def program(rec: RecordDef, alt: bool = False) -> FieldProgram:
    key = (rec.name, alt)
    if key not in _PROGRAMS:
        fields = rec.alt_fields if alt else rec.fields
        _PROGRAMS[key] = _compile(fields or ())
    return _PROGRAMS[key]


@dataclass
class _Check:
    problems: list[str] = field(default_factory=list)


def self_check() -> list[str]:
    """Consistency checks of the table (used by the tests)."""
    c = _Check()
    seen = set()
    for r in RECORDS:
        if r.key in seen:
            c.problems.append(f"duplicate key {r.key}")
        seen.add(r.key)
        try:
            program(r)
            if r.alt_fields:
                program(r, alt=True)
        except ValueError as e:
            c.problems.append(f"{r.name}: {e}")
        for f in r.fields:
            if f.type in ("N1", "Vn", "Uf", "Cf") and not f.is_array:
                c.problems.append(f"{r.name}.{f.name}: {f.type} must be an array")
            if f.type in ("Uf", "Cf") and not f.width:
                c.problems.append(f"{r.name}.{f.name}: {f.type} needs a width field")
    return c.problems
