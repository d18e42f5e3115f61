"""Python (C zlib) check of the HuffmanOnly probe files written by deflate_backends.

Run after the Rust program:  python3 scripts/deflate_backends/check_python.py
Inflates each probe_*.raw with decompressobj(wbits=-8) and (-9), one output byte per call
(max_length=1), so every back-reference must come from the inflater's own 256/512-byte window.
"""
import glob, os, zlib

d = os.path.join(os.path.dirname(__file__), "../../target/deflate_backends/release")
plain = open(os.path.join(d, "probe_plain.bin"), "rb").read()
for w in (-8, -9):
    try:
        zlib.compressobj(6, zlib.DEFLATED, w)
        print(f"compressobj(wbits={w}): accepted")
    except Exception as e:
        print(f"compressobj(wbits={w}): {e!r}")
for f in sorted(glob.glob(os.path.join(d, "probe_*.raw"))):
    data = open(f, "rb").read()  # ends with the sync flush 00 00 ff ff
    for w in (-8, -9):
        o = zlib.decompressobj(wbits=w)
        out, buf = [], data
        try:
            while True:
                chunk = o.decompress(buf, 1)
                buf = o.unconsumed_tail
                if not chunk and not buf:
                    break
                out.append(chunk)
            res = "ok, identical" if b"".join(out) == plain else "DIFFERENT"
        except zlib.error as e:
            res = f"fails: {e} after {sum(map(len, out))} bytes"
        print(f"{os.path.basename(f)}: decompressobj(wbits={w}): {res}")
print("zlib runtime", zlib.ZLIB_RUNTIME_VERSION)
