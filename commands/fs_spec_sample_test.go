package commands

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zodbctl/zodbctl/fsformat"
)

// TestSpecSample writes tiny.fs of spec/filestorage.md §8 through the
// Appender (root creation; bob adds a PersistentMapping with extension
// {'k': 1}; undo of that) and checks the file size and the fsdump, fstest
// and fstail outputs given for it in spec/tools-output.md §2, §4 and §8.
func TestSpecSample(t *testing.T) {
	const classPickle = "\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00."
	emptyPM := classPickle + "\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03s."
	withP := classPickle + "\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03X\x01\x00\x00\x00pq\x04C\x08\x00\x00\x00\x00\x00\x00\x00\x01q\x05h\x00\x86q\x06Qss."
	ext := "\x80\x03}q\x00X\x01\x00\x00\x00kq\x01K\x01s."
	if len(emptyPM) != 64 || len(withP) != 91 || len(ext) != 17 {
		t.Fatalf("pickle lengths %d %d %d", len(emptyPM), len(withP), len(ext))
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "tiny.fs")
	a, err := fsformat.Create(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Begin(fsformat.TxnMeta{Tid: 0x03f5945838888888, Description: []byte("initial database creation")}))
	rootPos, err := a.Store(0, []byte(emptyPM))
	must(nil, err)
	must(a.Commit())
	must(a.Begin(fsformat.TxnMeta{Tid: 0x03f594584ddddddd, User: []byte("bob"), Description: []byte("add p"), Extension: []byte(ext)}))
	must(a.Store(0, []byte(withP)))
	must(a.Store(1, []byte(emptyPM)))
	must(a.Commit())
	must(a.Begin(fsformat.TxnMeta{Tid: 0x03f5945852222222, Description: []byte("undo")}))
	must(a.StoreBackpointer(0, rootPos))
	must(a.Delete(1))
	must(a.Commit())
	must(nil, a.Close())
	if st, _ := os.Stat(path); st.Size() != 596 {
		t.Fatalf("tiny.fs is %d bytes, the spec's 596", st.Size())
	}
	t.Chdir(dir)
	want := map[string]string{
		"fsdump": `Trans #00000 tid=03f5945838888888 size=154 time=2024-01-02 03:04:13.250000 offset=52
    status=' ' user=b'' description=b'initial database creation'
  data #00000 oid=0000000000000000 size=64 class=persistent.mapping.PersistentMapping
Trans #00001 tid=03f594584ddddddd size=287 time=2024-01-02 03:04:18.250000 offset=214
    status=' ' user=b'bob' description=b'add p'
  data #00000 oid=0000000000000000 size=91 class=persistent.mapping.PersistentMapping
  data #00001 oid=0000000000000001 size=64 class=persistent.mapping.PersistentMapping
Trans #00002 tid=03f5945852222222 size=127 time=2024-01-02 03:04:19.250000 offset=488
    status=' ' user=b'' description=b'undo'
  data #00000 oid=0000000000000000 size=64 class=persistent.mapping.PersistentMapping bp=03f5945838888888
  data #00001 oid=0000000000000001 class=undo or abort of object creation
`,
		"verify -v -v": `        52: object oid 0x0000000000000000 #0
         4: transaction tid 0x03f5945838888888 #0 
       214: object oid 0x0000000000000000 #0
       347: object oid 0x0000000000000001 #1
       166: transaction tid 0x03f594584ddddddd #1 
       488: object oid 0x0000000000000000 #0
       538: object oid 0x0000000000000001 #1
       461: transaction tid 0x03f5945852222222 #2 
no errors detected`,
		"fstail -n 2": `2024-01-02 03:04:19.250000: hash=c4b0d1a9a55045f7f056ac2cd7ab0540cc5f9e98
user='' description=b'undo' length=127 offset=461 (+27)

2024-01-02 03:04:18.250000: hash=c8927c639c38e1743b748a96753075a8e9b0c17c
user=b'bob' description=b'add p' length=287 offset=166 (+48)

`,
	}
	for args, w := range want {
		out, errs, exit := run(t, append(strings.Fields(args), "tiny.fs")...)
		if out != w || errs != "" || exit != 0 {
			t.Errorf("%s: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", args, exit, errs, out, w)
		}
	}
	verbose, _, _ := run(t, "fsdump", "--verbose", "tiny.fs")
	lastTxn := `============================================================
offset: 461
end pos: 588
transaction id: 03f5945852222222
trec len: 127
status: b' '
user: ''
description: b'undo'
len(extra): 0
------------------------------------------------------------
offset: 488
oid: 0000000000000000
revid: 03f5945852222222
previous record offset: 214
transaction offset: 461
len(data): 0
backpointer: 52
------------------------------------------------------------
offset: 538
oid: 0000000000000001
revid: 03f5945852222222
previous record offset: 347
transaction offset: 461
len(data): 0
backpointer: 0
redundant trec len: 127
`
	if !strings.HasSuffix(verbose, lastTxn) {
		t.Errorf("fsdump --verbose does not end with the spec's sample:\n%s", verbose)
	}
}
