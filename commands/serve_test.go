package commands

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func serveRun(args ...string) (string, string, int) {
	var o, e bytes.Buffer
	code := Run(append([]string{"zodbctl", "serve"}, args...), &o, &e)
	return o.String(), e.String(), code
}

func TestServeCheck(t *testing.T) {
	home := t.TempDir()
	for _, d := range []string{"etc", "var", "blobs"} {
		os.Mkdir(filepath.Join(home, d), 0o755)
	}
	conf := filepath.Join(home, "etc", "zeo.conf")
	os.WriteFile(conf, []byte(`<zeo>
    address 8800
    read-only false
    invalidation-queue-size 100
</zeo>
<filestorage 1>
    path $INSTANCE/var/Data1.fs
</filestorage>
<filestorage 2>
    path $INSTANCE/var/Data2.fs
    read-only true
    blob-dir $INSTANCE/blobs
</filestorage>
<mappingstorage m/>
`), 0o644)
	out, errOut, code := serveRun("--check", "-C", conf)
	want := "config " + conf + "\naddress *:8800\nread-only false\n" +
		"storage 1 filestorage path=" + home + "/var/Data1.fs read-only=false blob-dir=-\n" +
		"storage 2 filestorage path=" + home + "/var/Data2.fs read-only=true blob-dir=" + home + "/blobs\n" +
		"storage m mappingstorage path=- read-only=false blob-dir=-\n"
	if code != 0 || out != want || errOut != "" {
		t.Errorf("exit %d\n%s\nstderr %q\nwant\n%s", code, out, errOut, want)
	}

	// -X: a define and a key override.
	other := t.TempDir()
	os.Mkdir(filepath.Join(other, "var"), 0o755)
	out, _, code = serveRun("--check", "-C", conf, "-X", "INSTANCE="+other, "-X", "zeo/address=[::1]:8200", "-X", "zeo/read-only=on")
	want = "config " + conf + "\naddress [::1]:8200\nread-only true\n" +
		"storage 1 filestorage path=" + other + "/var/Data1.fs read-only=true blob-dir=-\n"
	if code != 0 || out[:len(want)] != want {
		t.Errorf("-X: exit %d\n%s\nwant\n%s", code, out, want)
	}

	// runzeo's -a, -f, -t and --pid-file, with and without -C.
	out, _, code = serveRun("--check", "-a", "127.0.0.1:8100", "-f", home+"/var/a.fs", "-f", "b.fs")
	want = "config -\naddress 127.0.0.1:8100\nread-only false\n" +
		"storage 1 filestorage path=" + home + "/var/a.fs read-only=false blob-dir=-\n" +
		"storage 2 filestorage path=b.fs read-only=false blob-dir=-\n"
	if code != 0 || out != want {
		t.Errorf("-a -f: exit %d\n%s\nwant\n%s", code, out, want)
	}
	out, _, code = serveRun("--check", "-C", conf, "-a", "/tmp/zeo.sock", "-f", "c.fs", "-t", "2.5", "--pid-file", "zeo.pid")
	want = "config " + conf + "\naddress unix:/tmp/zeo.sock\nread-only false\nstorage 1 filestorage path=c.fs read-only=false blob-dir=-\n"
	if code != 0 || out != want {
		t.Errorf("-C -a -f: exit %d\n%s\nwant\n%s", code, out, want)
	}

	// Errors: one line, exit 2, nothing on stdout.
	bad := filepath.Join(home, "etc", "bad.conf")
	os.WriteFile(bad, []byte("<zeo>\naddress 8800\nread-only 1\n</zeo>\n<mappingstorage/>\n"), 0o644)
	cases := []struct {
		args   []string
		stderr string
	}{
		{[]string{"--check", "-C", bad}, "zodbctl: serve: not a valid boolean value: '1' (key 'read-only', line 3, in file://" + bad + ")\n"},
		{[]string{"--check", "-C", filepath.Join(home, "none.conf")}, "zodbctl: serve: error opening file " + home + "/none.conf: [Errno 2] No such file or directory: '" + home + "/none.conf'\n"},
		{[]string{"--check"}, "zodbctl: serve: no server address specified; use -a or -C\n"},
		{[]string{"--check", "-a", "8100"}, "zodbctl: serve: no storages specified; use -f or -C\n"},
		{[]string{"--check", "-C", conf, "-a", "a b"}, "zodbctl: serve: -a: not a valid host name: 'a b'\n"},
		{[]string{"-C", conf}, "zodbctl: serve: the ZEO server is not built yet\n"},
		{[]string{"--check", "-C", conf, "-X", "novalue"}, "zodbctl: serve: -X novalue: want NAME=VALUE\n"},
	}
	if runServer != nil {
		cases = cases[:5]
	}
	for _, c := range cases {
		out, errOut, code := serveRun(c.args...)
		if code != 2 || out != "" || errOut != c.stderr {
			t.Errorf("%v: exit %d stdout %q stderr %q, want %q", c.args, code, out, errOut, c.stderr)
		}
	}
}
