#!/usr/bin/env python3
"""Generate encoder/decoder test vectors with CPython's C pickler.

Run from this directory: python3 gen_vectors.py > vectors.json
Each vector: name, protocol, fast, values (one pickle per value, one Pickler
so the memo is shared), hex of the concatenated output, roundtrip (whether
decoding must give the value back).

Values are written in the typed JSON of the ZEO transcripts, plus:
{"set": [...]}, {"frozenset": [...]}, {"global": "mod.name"},
{"pid": v}, {"reduce": callable, "args": [...], "state": v, "new": bool,
"listitems": [...], "dictitems": [[k, v]...]}, {"shared": id, "value": v}
(defines an object) and {"same": id} (the same object again).
Every str/bytes/tuple is built as a fresh object, so only CPython's own
singletons (empty and 1-character str/bytes) are shared implicitly.
"""
import io, json, pickle, sys, types, copyreg

zfake = types.ModuleType("zfake")
sys.modules["zfake"] = zfake


def _mkfunc(name):
    def f(*a):
        raise RuntimeError("never called")
    # One str object for the module name, as in a real module (every class
    # and function of a module shares its __name__).
    f.__module__ = zfake.__name__
    f.__qualname__ = f.__name__ = name
    setattr(zfake, name, f)
    return f


_classes = {}


def _mkclass(name):
    if name not in _classes:
        c = type(name, (), {})
        c.__module__ = zfake.__name__
        c.__qualname__ = name
        setattr(zfake, name, c)
        _classes[name] = c
    return _classes[name]


for n in ("f", "g", "Prefix"):
    _mkfunc(n)


class SkipCase(Exception):
    pass


class PRef:
    def __init__(self, id):
        self.id = id


class Reduced:
    def __init__(self, spec):
        self.spec = spec

    def __reduce_ex__(self, proto):
        s = self.spec
        items = None
        if "listitems" in s:
            items = iter(s["listitems"])
        ditems = None
        if "dictitems" in s:
            ditems = iter(s["dictitems"])
        if s["new"]:
            return (copyreg.__newobj__, (s["callable"],) + tuple(s["args"]), s["state"], items, ditems)
        return (s["callable"], tuple(s["args"]), s["state"], items, ditems)


def lookup(dotted):
    mod, name = dotted.rsplit(".", 1)
    try:
        __import__(mod)
    except ImportError:
        # A stand-in for a module that is not installed (e.g. persistent).
        sys.modules[mod] = types.ModuleType(mod)
    m = sys.modules[mod]
    if not hasattr(m, name):
        c = type(name, (), {})
        c.__module__ = m.__name__
        c.__qualname__ = name
        setattr(m, name, c)
    return getattr(m, name)


def build(j, shared):
    if j is None or isinstance(j, bool):
        return j
    if isinstance(j, int):
        return int(str(j))
    if isinstance(j, float):
        return float(repr(j))
    if isinstance(j, str):
        return (j + "x")[:-1]
    if isinstance(j, list):
        return [build(x, shared) for x in j]
    assert isinstance(j, dict), j
    if "int" in j:
        return int(j["int"])
    if "float" in j:
        return float(j["float"])
    if "bytes" in j:
        return (bytes.fromhex(j["bytes"]) + b"x")[:-1]
    if "tuple" in j:
        return tuple([build(x, shared) for x in j["tuple"]])
    if "dict" in j:
        return {build(k, shared): build(v, shared) for k, v in j["dict"]}
    if "set" in j or "frozenset" in j:
        items = [build(x, shared) for x in j.get("set", j.get("frozenset"))]
        v = (set if "set" in j else frozenset)(items)
        if list(v) != items:
            raise SkipCase("set iteration order differs from the JSON order")
        return v
    if "global" in j:
        return lookup(j["global"])
    if "pid" in j:
        return PRef(build(j["pid"], shared))
    if "reduce" in j:
        spec = {
            "callable": lookup(j["reduce"]),
            "args": [build(x, shared) for x in j.get("args", [])],
            "state": build(j.get("state"), shared),
            "new": j.get("new", False),
        }
        if "listitems" in j:
            spec["listitems"] = [build(x, shared) for x in j["listitems"]]
        if "dictitems" in j:
            spec["dictitems"] = [(build(k, shared), build(v, shared)) for k, v in j["dictitems"]]
        return Reduced(spec)
    if "shared" in j:
        v = build(j["value"], shared)
        shared[j["shared"]] = v
        return v
    if "same" in j:
        return shared[j["same"]]
    raise ValueError(j)


class P(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, PRef):
            return obj.id
        return None


def I(n):
    return {"int": str(n)} if abs(n) >= 2**53 else n


def F(x):
    return {"float": repr(x)}


def B(b):
    return {"bytes": b.hex()}


def T(*xs):
    return {"tuple": list(xs)}


def D(*kv):
    return {"dict": [list(p) for p in kv]}


cases = []


def case(name, *values, protos=range(5), fast=(False, True), roundtrip=True):
    for p in protos:
        for f in fast:
            cases.append((name, p, f, list(values), roundtrip))


ints = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32, 2**40 + 100,
        2**63 - 1, 2**63, 2**64, -1, -127, -128, -129, -255, -256, -257, -32768, -32769,
        -2**31, -2**31 - 1, -2**63, -2**63 - 1, -2**64, 140493036856592, 2**2039, -2**2039,
        2**2040, 2**2100, -2**2100]
for n in ints:
    case("int %d" % n, I(n))
for x in [0.0, -0.0, 1.5, -2.25, 1e16, 1.5e16, 1e-5, 0.0001, 123456789.123, 1e300,
          float("inf"), float("-inf"), 5e-324]:
    case("float %r" % x, F(x))
case("none", None)
case("true", True)
case("false", False)
for s in ["", "a", "\u00e9", "\u0101", "ab", "h\u00e9llo w\u00f6rld", "\U0001f600 x",
          "a\\b\nc\rd\x00e\x1af", "\u20ac" * 3, "x" * 255, "y" * 256]:
    case("str %r" % s[:20], s)
case("str 70000", "z" * 70000, protos=[3, 4], fast=[False])
for b in [b"", b"x", b"\x00\xff", b"ab", bytes(range(256))[:255], bytes(range(256))]:
    case("bytes %r" % b[:10], B(b))
case("bytes 70000", B(b"q" * 70000), protos=[3, 4], fast=[False])
case("tuples", [T(), T(1), T(1, 2), T(1, 2, 3), T(1, 2, 3, 4), T(T(T()))])
case("empty list", [])
case("list1", ["abc"])
for n in (2, 999, 1000, 1001, 2000, 2001):
    case("list %d" % n, list(range(n)), protos=[0, 2, 3, 4] if n < 1000 else [1, 4], fast=[n < 1000])
case("empty dict", D())
case("dict1", D(["k", "v"]))
case("dict2", D(["b", 2], ["a", 1]))
for n in (999, 1000, 1001, 2000, 2001):
    case("dict %d" % n, D(*[[i, -i] for i in range(n)]), protos=[0, 3] if n < 1000 else [1, 4], fast=[n < 1000])
case("dict keys", D([T(1, "x"), None], [B(b"\x00" * 8), 1.5], [7, T()]))
case("set", {"set": []}, {"set": [1, 2, 3]}, {"frozenset": [4, 5]}, {"frozenset": []})
case("set 1000", {"set": list(range(1000))}, protos=[3, 4], fast=[False])
case("set 1001", {"set": list(range(1001))}, protos=[3, 4], fast=[False])
case("global", {"global": "zfake.f"}, protos=range(5))
case("globals", [{"global": "zfake.f"}, {"global": "zfake.g"}, {"global": "zfake.f"},
                 {"global": "builtins.ValueError"}, {"global": "copyreg._reconstructor"}])
case("reduce", {"reduce": "zfake.f", "args": ["arg", 1]})
case("reduce state", {"reduce": "zfake.f", "args": [], "state": D(["a", B(b"\x00" * 8)])})
case("newobj", {"reduce": "zfake.Klass", "args": [1], "new": True, "state": D(["x", 1])},
     protos=range(2, 5))
case("reduce items", {"reduce": "zfake.f", "args": [], "listitems": [1], "dictitems": [["a", 1], ["b", 2]]})
case("reduce many items", {"reduce": "zfake.f", "args": [], "listitems": list(range(1001)),
                           "dictitems": [[i, i] for i in range(2000)]}, protos=[0, 1, 4], fast=[True])
case("pid", {"pid": T(B(b"\x00" * 7 + b"\x01"), None)}, {"pid": ["w", T(B(b"\x00" * 8))]},
     protos=range(1, 5))
case("pid text", {"pid": "abc"}, protos=[0])
case("shared list", [{"shared": 1, "value": [1, 2]}, {"same": 1}, {"same": 1}])
case("shared str", [{"shared": 1, "value": "hello"}, {"same": 1}, "hello"])
case("shared tuple", [{"shared": 1, "value": T(1, 2)}, {"same": 1}])
case("shared dict", [{"shared": 1, "value": D(["a", 1])}, {"same": 1}])
case("singletons", ["a", "a", "", "", "\u00e9", "\u00e9", "\u0101", "\u0101"])
case("singleton bytes", [B(b"a"), B(b"a"), B(b""), B(b""), B(b"ab"), B(b"ab")])
case("two pickles", T({"global": "zfake.Klass"}, None), D(["data", {"global": "zfake.Klass"}]),
     protos=range(5), fast=(False,))
case("record", T({"global": "persistent.mapping.PersistentMapping"}, None), protos=[3], fast=(False,))
case("big frame", [B(b"a" * 1000)] * 200 + ["s" * 70000] + [1, 2], protos=[4])
case("many small", [T(i, "k%d" % i) for i in range(8000)], protos=[4], fast=[False])
case("long list of str", ["%05d" % i for i in range(3000)], protos=[0, 3, 4], fast=[False])
case("nested", D(["l", [T(1, [2, D(["x", [3]])])]]))
case("zeo message", T(T(B(b"\0" * 7 + b"\1"), B(bytes.fromhex("03ac11b771fa1c01"))), False, "loadBefore",
                      T(B(b"\0" * 7 + b"\1"), B(bytes.fromhex("03ac11b771fa1c01")))), protos=[3])


# Random values: nested containers, shared objects, every scalar kind.
import random

rnd = random.Random(20261126)


def rand_scalar(depth):
    k = rnd.randrange(9)
    if k == 0:
        return rnd.choice([None, True, False])
    if k == 1:
        return I(rnd.choice([0, 1, 255, 256, 65535, 65536, -1, -129, 2**31, -2**31 - 1, 2**63, -2**64])
                 + rnd.randrange(-3, 4))
    if k == 2:
        return I(rnd.getrandbits(rnd.randrange(1, 140)) * rnd.choice([1, -1]))
    if k == 3:
        return F(rnd.choice([0.5, -1e-300, 3.14159, 1e22, float("inf"), 2.0 ** 70, -0.0]))
    if k == 4:
        n = rnd.choice([0, 1, 1, 2, 5, 40, 300])
        return "".join(rnd.choice("ab\u00e9\u0100\u20ac\U0001f600\n\\\x00") for _ in range(n))
    if k == 5:
        return B(bytes(rnd.getrandbits(8) for _ in range(rnd.choice([0, 1, 1, 2, 8, 300]))))
    if k == 6:
        return {"global": rnd.choice(["zfake.f", "zfake.g", "builtins.ValueError", "copyreg._reconstructor"])}
    if k == 7:
        return {"pid": T(B(bytes(8)), {"global": "zfake.Klass"})}
    return "k%d" % rnd.randrange(5)


def rand_key():
    k = rnd.randrange(4)
    if k == 0:
        return "key%d" % rnd.randrange(20)
    if k == 1:
        return rnd.randrange(-300, 70000)
    if k == 2:
        return B(bytes([rnd.randrange(4)]) * rnd.randrange(3))
    return T(rnd.randrange(3), "t%d" % rnd.randrange(3))


def key_id(j):
    return json.dumps(j, sort_keys=True)


def rand_value(depth, shared_ids):
    if depth > 3 or rnd.random() < 0.35:
        return rand_scalar(depth)
    k = rnd.randrange(7)
    if k == 0:
        return T(*[rand_value(depth + 1, shared_ids) for _ in range(rnd.choice([0, 1, 2, 3, 4, 6]))])
    if k == 1:
        return [rand_value(depth + 1, shared_ids) for _ in range(rnd.choice([0, 1, 2, 3, 7]))]
    if k == 2:
        pairs, seen = [], set()
        for _ in range(rnd.choice([0, 1, 2, 5])):
            key = rand_key()
            if key_id(key) in seen or key_id(key) == key_id(True):
                continue
            seen.add(key_id(key))
            pairs.append([key, rand_value(depth + 1, shared_ids)])
        return {"dict": pairs}
    if k == 3:
        items = list(set(rnd.randrange(50) for _ in range(rnd.randrange(6))))
        return {"frozenset" if rnd.random() < 0.5 else "set": items}
    if k == 4 and shared_ids:
        return {"same": rnd.choice(shared_ids)}
    if k == 5:
        sid = len(shared_ids) + 1
        v = rand_value(depth + 1, shared_ids)
        if isinstance(v, dict) and ("same" in v or "shared" in v or "global" in v):
            return v
        if v == [] or v == {"dict": []}:
            return v  # an empty Go slice has no identity to share
        shared_ids.append(sid)
        return {"shared": sid, "value": v}
    return {"reduce": "zfake.f", "args": [rand_value(depth + 1, shared_ids)],
            "state": rand_value(depth + 1, shared_ids) if rnd.random() < 0.5 else None}


for i in range(1000):
    ids = []
    v = rand_value(0, ids)
    proto = rnd.randrange(5)
    if proto == 0 and '"pid"' in json.dumps(v):
        proto = 1  # protocol 0 writes str(pid): Python reprs we do not model
    fast = rnd.random() < 0.3
    case("random %d" % i, v, protos=[proto], fast=[fast])

out = []
for name, proto, fast, values, roundtrip in cases:
    shared = {}
    try:
        objs = [build(v, shared) for v in values]
    except SkipCase:
        continue
    f = io.BytesIO()
    p = P(f, proto)
    p.fast = fast
    try:
        for o in objs:
            p.dump(o)
    except (ValueError, pickle.PicklingError, RecursionError) as e:
        continue
    out.append({"name": name, "protocol": proto, "fast": fast, "values": values,
                "hex": f.getvalue().hex(), "roundtrip": roundtrip})
json.dump(out, sys.stdout, indent=0)
