package commands

import (
	"encoding/json"
	"testing"

	"github.com/zodbctl/zodbctl/fsformat/pickle"
)

// FuzzConnectCatRender renders arbitrary records as cat and load --decode
// do: any pickle must render (or be refused), never panic or recurse
// without bound.
func FuzzConnectCatRender(f *testing.F) {
	f.Add(emptyRootRecord)
	f.Add([]byte("\x80\x03cZODB.tests.MinPO\nMinPO\nq\x00.\x80\x03}q\x01X\x05\x00\x00\x00valueq\x02K\x01s."))
	f.Add([]byte("\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03X\x01\x00\x00\x00aq\x04C\x08\x00\x00\x00\x00\x00\x00\x00\x01q\x05h\x00\x86q\x06Qss."))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := pickle.NewDecoder(data)
		d.FindGlobal = pickle.AnyGlobal
		for range 2 {
			v, err := d.Decode()
			if err != nil {
				return
			}
			_ = pyRepr(v)
			if _, err := json.Marshal(stateJSON(v, 0)); err != nil {
				t.Fatalf("stateJSON of %s: %v", pyRepr(v), err)
			}
		}
		_ = recordClass(data)
	})
}
