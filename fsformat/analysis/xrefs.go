package analysis

import (
	"errors"
	"fmt"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/refs"
)

// XrefStatus says what was found at the target of a cross-database
// reference.
type XrefStatus uint8

const (
	XrefOK        XrefStatus = iota // the target exists and has data
	XrefDangling                    // not in the target database, deleted, creation undone, or unloadable
	XrefUnknownDB                   // the target database was not given
)

// Xref is one cross-database reference.
type Xref struct {
	DB    string       // source database name
	Oid   fsformat.Oid // source object
	Class string       // source class (get_pickle_metadata)
	Tid   fsformat.Tid // tid of the source revision
	Pos   int64        // position of the source record
	// TargetDB and TargetOid name the referenced object; TargetClass is
	// the class the reference records ("" for ['n', …] and weak forms).
	TargetDB    string
	TargetOid   fsformat.Oid
	TargetClass string
	Kind        refs.Kind // refs.Strong or refs.Weak
	Form        refs.Form
	Status      XrefStatus
}

// XrefDatabase is one database of a multi-database: its name as used in
// cross-database references and its opened file.
type XrefDatabase struct {
	Name string
	*Current
	dead map[fsformat.Oid]bool // current data is a deletion, an undone creation or unloadable
}

// NewXrefDatabase prepares a database for CrossRefs: it finds the objects
// of its index that have no loadable current data.
func NewXrefDatabase(name string, c *Current) (*XrefDatabase, error) {
	db := &XrefDatabase{Name: name, Current: c, dead: map[fsformat.Oid]bool{}}
	err := c.EachCurrent(true, func(r *CurrentRecord) error {
		if r.Err != nil {
			db.dead[r.Oid] = true
		}
		return nil
	})
	return db, err
}

// Alive tells whether oid exists in the database with loadable data.
func (db *XrefDatabase) Alive(oid fsformat.Oid) bool {
	return db.Has(oid) && !db.dead[oid]
}

// CrossRefs lists the cross-database references (['m', …], ['n', …] and
// ['w', (oid, db)]) of the current revision of every object of every
// database (with allRevisions, of every revision with data, in file order),
// and checks each target against the current state of the named database.
// Databases are visited in the order given.
func CrossRefs(dbs []*XrefDatabase, allRevisions bool, fn func(*Xref) error) error {
	byName := map[string]*XrefDatabase{}
	for _, db := range dbs {
		byName[db.Name] = db
	}
	var sc refs.Scanner
	var found []refs.Ref
	var x Xref
	for _, db := range dbs {
		visit := func(oid fsformat.Oid, tid fsformat.Tid, pos int64, data []byte) error {
			var err error
			found, err = sc.Scan(data, found[:0])
			if err != nil {
				return fmt.Errorf("%s: oid %s: data record at %d: %w", db.File.Name, oid.Repr(), pos, err)
			}
			class := ""
			for i := range found {
				r := &found[i]
				if !r.Cross() {
					continue
				}
				if class == "" {
					m, n := sc.Class(data)
					class = string(m) + "." + string(n)
				}
				x = Xref{DB: db.Name, Oid: oid, Class: class, Tid: tid, Pos: pos,
					TargetDB: string(r.DB), TargetOid: fsformat.Oid(r.Oid), Kind: r.Kind, Form: r.Form}
				if r.Module != nil || r.Name != nil {
					x.TargetClass = string(r.Module) + "." + string(r.Name)
				}
				switch target := byName[x.TargetDB]; {
				case target == nil:
					x.Status = XrefUnknownDB
				case !target.Alive(x.TargetOid):
					x.Status = XrefDangling
				}
				if err := fn(&x); err != nil {
					return err
				}
			}
			return nil
		}
		var err error
		if allRevisions {
			err = eachRevision(db.File, visit)
		} else {
			err = db.EachCurrent(false, func(r *CurrentRecord) error {
				if r.Err != nil {
					return nil
				}
				return visit(r.Oid, r.Tid, r.Pos, r.Data)
			})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// eachRevision calls fn for every data record with data (backpointers
// resolved), in file order.
func eachRevision(f *fsformat.File, fn func(oid fsformat.Oid, tid fsformat.Tid, pos int64, data []byte) error) error {
	for txn, err := range f.Transactions(fsformat.IterOptions{}) {
		if err != nil {
			return err
		}
		for rec, err := range txn.Records() {
			if err != nil {
				return err
			}
			data := rec.Data
			if rec.IsBackpointer() {
				if rec.Back == 0 {
					continue
				}
				d, _, _, err := f.LoadBack(rec.Oid, rec.Back)
				if errors.Is(err, fsformat.ErrNoData) {
					continue
				}
				if err != nil {
					return fmt.Errorf("%s: data record at %d: %w", f.Name, rec.Pos, err)
				}
				data = d
			}
			if err := fn(rec.Oid, rec.Tid, rec.Pos, data); err != nil {
				return err
			}
		}
	}
	return nil
}
