package fsformat

import "testing"

func TestClassName(t *testing.T) {
	cases := []struct {
		name, pickle, want string
	}{
		{"form 1, protocol 3", "\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.", "persistent.mapping.PersistentMapping"},
		{"form 2, __getnewargs__", "\x80\x03cfixturemodel\nNode\nq\x00X\x01\x00\x00\x00aq\x01\x85q\x02\x86q\x03.", "fixturemodel.Node"},
		{"form 3, protocol 3", "\x80\x03X\x03\x00\x00\x00modq\x00X\x04\x00\x00\x00Nameq\x01\x86q\x02N\x86q\x03.", "mod.Name"},
		{"form 3, protocol 1 (ZODB 3.2)", "((U\x0aOFS.Folderq\x01U\x06Folderq\x02tq\x03Ntq\x04.", "OFS.Folder.Folder"},
		{"form 5, (klass, None), protocol 1", "(cOFS.Image\nFile\nq\x01Ntq\x02.", "OFS.Image.File"},
		{"protocol 0 form 3", "((S'App.Product'\np1\nS'Product'\np2\ntp3\nNtp4\n.", "App.Product.Product"},
		{"protocol 4 STACK_GLOBAL", "\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x01m\x94\x8c\x01C\x94\x93\x94.", "m.C"},
		{"garbage", "\x00\x01\x02", "."},
		{"empty", "", "."},
		{"truncated global", "\x80\x03cmodule", "."},
		{"int", "\x80\x03K\x01.", "."},
	}
	for _, c := range cases {
		if got := string(AppendClassName(nil, []byte(c.pickle))); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
