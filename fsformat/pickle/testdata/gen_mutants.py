#!/usr/bin/env python3
"""Differential vectors for the decoder: mutate the plain-value vectors of
vectors.json.gz at random and keep every mutant CPython's pickle.loads
accepts, with the value it gives (typed JSON, as in gen_vectors.py).

Run from this directory: python3 gen_mutants.py | gzip -9 > mutants.json.gz
"""
import gzip, json, math, pickle, pickletools, random, resource, sys

# Garbage length fields make CPython try huge allocations: cap the address
# space so they fail with MemoryError instead of exhausting the machine.
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

rnd = random.Random(7)


class Refuse(Exception):
    pass


class U(pickle.Unpickler):
    def find_class(self, module, name):
        raise Refuse(module + "." + name)

    def persistent_load(self, pid):
        raise Refuse("pid")


def typed(v):
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        return {"int": str(v)} if abs(v) >= 2**53 else v
    if isinstance(v, float):
        return {"float": repr(v)}
    if isinstance(v, str):
        v.encode("utf-8")  # lone surrogates: not representable in JSON
        return v
    if isinstance(v, bytes):
        return {"bytes": v.hex()}
    if isinstance(v, bytearray):
        raise Refuse("bytearray")
    if isinstance(v, tuple):
        return {"tuple": [typed(x) for x in v]}
    if isinstance(v, list):
        return [typed(x) for x in v]
    if isinstance(v, dict):
        return {"dict": [[typed(k), typed(x)] for k, x in v.items()]}
    if isinstance(v, frozenset):
        return {"frozenset": [typed(x) for x in v]}
    if isinstance(v, set):
        return {"set": [typed(x) for x in v]}
    raise Refuse(type(v).__name__)


def plain(j):
    s = json.dumps(j)
    return not any(k in s for k in ('"global"', '"pid"', '"reduce"'))


vectors = json.load(gzip.open("vectors.json.gz"))
seeds = [bytes.fromhex(v["hex"]) for v in vectors
         if all(plain(x) for x in v["values"]) and len(v["hex"]) < 600]
out, seen = [], set()
ops = list(range(256))
while len(out) < 3000:
    d = bytearray(rnd.choice(seeds))
    for _ in range(rnd.randint(1, 3)):
        k = rnd.randrange(4)
        i = rnd.randrange(len(d))
        if k == 0:
            d[i] = rnd.choice(ops)
        elif k == 1:
            del d[i]
        elif k == 2:
            d.insert(i, rnd.choice(ops))
        else:
            j = rnd.randrange(len(d))
            d[i:i] = d[j:j + rnd.randint(1, 8)]
        if not d:
            d = bytearray(b"N.")
    d = bytes(d)
    if any(c in d for c in (b"\x96", b"\x97", b"\x98")):
        continue  # protocol-5 buffers: CPython itself misbehaves on garbage
    if d in seen:
        continue
    seen.add(d)
    # pickle.loads semantics (a file-based Unpickler reads frames
    # differently), so only mutants without globals or persistent ids.
    try:
        names = [op.name for op, _, _ in pickletools.genops(d)]
    except Exception:
        continue
    if any(n in ("GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4",
                 "REDUCE", "NEWOBJ", "NEWOBJ_EX") for n in names):
        continue
    try:
        # encoding="bytes": Python 2 strings stay bytes, as zodbctl decodes them.
        v = pickle.loads(d, encoding="bytes")
        j = typed(v)
        if "nan" in json.dumps(j):
            continue  # NaN != NaN
    except (Refuse, RecursionError):
        continue
    except Exception:
        continue
    out.append({"hex": d.hex(), "value": j})
json.dump(out, sys.stdout)
