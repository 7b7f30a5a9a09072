package pickle

import (
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"testing"
)

// TestDecodeMutants: garbled pickles that CPython's pickle.loads accepts
// (testdata/gen_mutants.py) must decode to the value CPython gave.
func TestDecodeMutants(t *testing.T) {
	f, err := os.Open("testdata/mutants.json.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var ms []struct {
		Hex   string          `json:"hex"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(data, &ms); err != nil {
		t.Fatal(err)
	}
	if len(ms) < 1000 {
		t.Fatalf("only %d mutants", len(ms))
	}
	bad := 0
	for _, m := range ms {
		in, _ := hex.DecodeString(m.Hex)
		var j any
		if err := decodeJSON(m.Value, &j); err != nil {
			t.Fatal(err)
		}
		want, err := fromTyped(j, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Unmarshal(in)
		if err != nil || !Equal(got, want) {
			bad++
			if bad <= 20 {
				t.Errorf("%s: got %v, %v; CPython: %s", m.Hex, abbrev(sprint(got)), err, abbrev(string(m.Value)))
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d mutants differ", bad, len(ms))
	}
}
