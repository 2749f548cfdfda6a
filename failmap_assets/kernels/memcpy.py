"""``put_bytes``: a bounds-checked ``memcpy`` of a run of bytes inside a Numba kernel.

A plain byte-copy loop costs about 1 ns per byte (LLVM cannot prove the arrays do not
alias, so it does not vectorize it); ``memcpy`` is several times faster. It is an
intrinsic, emitted inline: a jitted helper taking arrays would cost an NRT incref /
decref pair per call. Used for runs of constant or pre-escaped text (the per-wafer JSON
chips, the keys of the STDF generic table's JSON objects).
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def put_bytes(typingctx, dst, p, src, start, stop):
    """``dst[p : p + stop - start] = src[start:stop]``; returns ``p + stop - start``.

    One ``llvm.memcpy`` after a bounds check of both sides (``IndexError`` if
    ``start < 0``, ``stop < start``, ``stop > len(src)``, ``p < 0`` or the run
    does not fit in ``dst``). For 1-D C-contiguous uint8 arrays.
    """
    def byte_array(t, mutable):
        return (isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C" and t.dtype == types.uint8
                and (t.mutable or not mutable))

    if not (byte_array(dst, True) and byte_array(src, False)
            and all(isinstance(t, types.Integer) for t in (p, start, stop))):
        return None
    sig = types.intp(dst, p, src, start, stop)

    def codegen(context, builder, signature, args):
        dst_ty, _, src_ty, _, _ = signature.args
        dst_arr = context.make_array(dst_ty)(context, builder, args[0])
        src_arr = context.make_array(src_ty)(context, builder, args[2])
        pos = context.cast(builder, args[1], signature.args[1], types.intp)
        lo = context.cast(builder, args[3], signature.args[3], types.intp)
        hi = context.cast(builder, args[4], signature.args[4], types.intp)
        dst_len = builder.extract_value(dst_arr.shape, 0)
        src_len = builder.extract_value(src_arr.shape, 0)
        zero = pos.type(0)
        count = builder.sub(hi, lo)
        checks = (
            builder.icmp_signed("<", lo, zero),                            # start < 0
            builder.icmp_signed("<", count, zero),                         # stop < start
            builder.icmp_signed(">", hi, src_len),                         # stop > len(src)
            builder.icmp_signed("<", pos, zero),                           # p < 0
            builder.icmp_signed(">", count, builder.sub(dst_len, pos)),    # does not fit in dst
        )
        bad = checks[0]
        for check in checks[1:]:
            bad = builder.or_(bad, check)
        with cgutils.if_unlikely(builder, bad):
            context.call_conv.return_user_exc(builder, IndexError, ("put_bytes: copy out of bounds",))
        cgutils.raw_memcpy(builder, builder.gep(dst_arr.data, [pos]), builder.gep(src_arr.data, [lo]), count, 1)
        return builder.add(pos, count)

    return sig, codegen
