package pickle

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

type zeoRecord struct {
	Seq      int             `json:"seq"`
	Dir      string          `json:"dir"`
	Kind     string          `json:"kind"`
	Hex      string          `json:"hex"`
	Encoding string          `json:"encoding"`
	Value    json.RawMessage `json:"value"`
}

// zeoFrames returns every pickle frame of the recorded ZEO sessions.
func zeoFrames(t testing.TB) map[string][]zeoRecord {
	files, err := filepath.Glob("../../testdata/zeo/*.jsonl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	out := map[string][]zeoRecord{}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			var r zeoRecord
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if r.Kind == "frame" && r.Encoding == "pickle" {
				out[filepath.Base(name)] = append(out[filepath.Base(name)], r)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestZEOTranscripts decodes every pickle frame of the recorded sessions,
// compares it with the recorded typed value, and re-encodes it in fast
// protocol 3 (what ZEO sends): the bytes must be the Python sender's.
func TestZEOTranscripts(t *testing.T) {
	n := 0
	for file, recs := range zeoFrames(t) {
		for _, r := range recs {
			data, err := hex.DecodeString(r.Hex)
			if err != nil {
				t.Fatal(err)
			}
			d := NewDecoder(data)
			d.MaxProtocol = 3
			d.FindGlobal = AllowGlobals() // refuses all, like the default
			got, decErr := d.Decode()
			if len(r.Value) == 0 {
				// Python could not decode this frame either.
				if decErr == nil {
					t.Errorf("%s seq %d: decoded garbage %s as %v", file, r.Seq, abbrev(r.Hex), sprint(got))
				} else {
					t.Logf("%s seq %d: %v", file, r.Seq, decErr)
				}
				continue
			}
			var j any
			if err := decodeJSON(r.Value, &j); err != nil {
				t.Fatal(err)
			}
			want, err := fromTyped(j, nil)
			if err != nil {
				t.Fatalf("%s seq %d: %v", file, r.Seq, err)
			}
			want = fixBuiltins(want)
			err = decErr
			var ge *GlobalError
			if errors.As(err, &ge) {
				// Only the hostile session sends globals; the default policy
				// must refuse them and name the global.
				if file != "m03-unsafe-global.jsonl" {
					t.Errorf("%s seq %d: %v", file, r.Seq, err)
				}
				if ge.Module+"."+ge.Name != "os.system" && ge.Module+"."+ge.Name != "builtins.set" {
					t.Errorf("%s seq %d: refused %s.%s", file, r.Seq, ge.Module, ge.Name)
				}
				d.Reset(data)
				d.FindGlobal = AnyGlobal
				got, err = d.Decode()
			}
			if err != nil {
				t.Errorf("%s seq %d: %v", file, r.Seq, err)
				continue
			}
			if !Equal(got, want) {
				t.Errorf("%s seq %d: decoded %v, want %v", file, r.Seq, abbrev(sprint(got)), abbrev(sprint(want)))
				continue
			}
			n++
			if containsGlobal(got) {
				continue // hand-made hostile frames were not written by a pickler
			}
			enc, err := MarshalFast(got, 3)
			if err != nil {
				t.Errorf("%s seq %d: encode: %v", file, r.Seq, err)
				continue
			}
			if string(enc) != string(data) {
				// A few hand-made frames come from a pickler with a memo.
				enc, _ = Marshal(got, 3)
			}
			if string(enc) != string(data) {
				t.Errorf("%s seq %d (%s): re-encoded\n got %s\nwant %s", file, r.Seq, r.Dir,
					abbrev(hex.EncodeToString(enc)), abbrev(r.Hex))
			}
		}
	}
	if n < 100 {
		t.Errorf("only %d frames checked", n)
	}
	t.Logf("%d frames decoded and re-encoded", n)
}

// fixBuiltins calls the builtins inside a transcript value as the decoder
// does at REDUCE (callBuiltin): the decoder turns builtins.set(...) into a
// *Set, the transcript shows the call.
func fixBuiltins(v any) any {
	switch x := v.(type) {
	case Tuple:
		for i := range x {
			x[i] = fixBuiltins(x[i])
		}
	case *Object:
		if x.New || x.State != nil || x.ListItems != nil || x.DictItems != nil {
			return x
		}
		d := NewDecoder(nil)
		called, ok, err := d.callBuiltin(x.Callable, x.Args)
		if !ok || err != nil {
			return x
		}
		if final, err := d.finalize(called, 0); err == nil {
			return final
		}
	}
	return v
}

func containsGlobal(v any) bool {
	switch x := v.(type) {
	case Tuple:
		for _, e := range x {
			if containsGlobal(e) {
				return true
			}
		}
	case *Object, *Set, Global:
		return true
	}
	return false
}
