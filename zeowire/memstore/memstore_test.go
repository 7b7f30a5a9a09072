package memstore

import (
	"context"
	"errors"
	"testing"

	"github.com/zodbctl/zodbctl/zeowire"
)

func commitOne(t *testing.T, s *Store, tid zeowire.Tid, oid zeowire.Oid, serial zeowire.Tid, data string) error {
	t.Helper()
	tx, err := s.Begin(context.Background(), zeowire.TxnMeta{Tid: tid})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Store(oid, serial, []byte(data)); err != nil {
		tx.Abort()
		return err
	}
	tx.Vote()
	return tx.Finish()
}

func TestStoreRules(t *testing.T) {
	s := New("x")
	bg := context.Background()
	if err := commitOne(t, s, 10, 1, 0, "a"); err != nil {
		t.Fatal(err)
	}
	if err := commitOne(t, s, 20, 1, 10, "b"); err != nil {
		t.Fatal(err)
	}
	// A stale serial conflicts, naming both serials.
	err := commitOne(t, s, 30, 1, 10, "c")
	var ce *zeowire.ConflictError
	if !errors.As(err, &ce) || ce.Committed != 20 || ce.Serial != 10 {
		t.Fatalf("stale store: %v", err)
	}
	rev, ok, err := s.LoadBefore(bg, 1, 20)
	if err != nil || !ok || string(rev.Data) != "a" || rev.Start != 10 || rev.End != 20 {
		t.Errorf("LoadBefore(20) = %+v %v %v", rev, ok, err)
	}
	if _, ok, err := s.LoadBefore(bg, 1, 10); ok || err != nil {
		t.Errorf("LoadBefore(10): %v %v", ok, err)
	}
	var pk *zeowire.POSKeyError
	if _, _, err := s.LoadBefore(bg, 2, zeowire.MaxTid); !errors.As(err, &pk) {
		t.Errorf("missing oid: %v", err)
	}
	if d, err := s.LoadSerial(bg, 1, 10); err != nil || string(d) != "a" {
		t.Errorf("LoadSerial: %q %v", d, err)
	}
	oids, _ := s.NewOids(2)
	if oids[0] != 2 || oids[1] != 3 {
		t.Errorf("NewOids after oid 1: %v", oids)
	}
	// Undo of the last transaction restores "a" with a back pointer.
	tx, _ := s.Begin(bg, zeowire.TxnMeta{Tid: 40})
	undone, err := tx.Undo(20)
	if err != nil || len(undone) != 1 || undone[0] != 1 {
		t.Fatalf("Undo: %v %v", undone, err)
	}
	tx.Vote()
	tx.Finish()
	if rev, _, _ := s.LoadBefore(bg, 1, zeowire.MaxTid); string(rev.Data) != "a" || rev.Start != 40 {
		t.Errorf("after undo: %+v", rev)
	}
}

func TestMapping(t *testing.T) {
	s := NewMapping("")
	info := s.Info()
	if info.Name != "Mapping Storage" || info.SupportsUndo || info.SupportsRecordIternext || len(info.Interfaces) != 3 {
		t.Errorf("info %+v", info)
	}
	_, err := s.LoadSerial(context.Background(), 1, 5)
	var pk *zeowire.POSKeyError
	if !errors.As(err, &pk) || len(pk.Args) != 2 {
		t.Errorf("LoadSerial error %v", err)
	}
}
