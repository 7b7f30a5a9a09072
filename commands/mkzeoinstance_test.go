package commands

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/zodbctl/zodbctl/mkinstance"
)

// mkzManifest is the part of testdata/mkzeoinstance/*/manifest.json the
// golden test uses.
type mkzManifest struct {
	Command  []string          `json:"command"`
	ExitCode int               `json:"exit_code"`
	Stdout   string            `json:"stdout"`
	Stderr   string            `json:"stderr"`
	Files    map[string]string `json:"files"`
	Tree     []struct {
		Path string `json:"path"`
		Type string `json:"type"`
		Mode string `json:"mode"`
	} `json:"tree"`
}

func mkzLoad(t *testing.T, variant string) mkzManifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "mkzeoinstance", variant, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m mkzManifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// mkzExpectFile turns a reference file (placeholders replaced) into what
// zodbctl writes: the documented differences, line by line.
func mkzExpectFile(name, text, exe string) string {
	switch name {
	case "etc/zeo.conf":
		lines := strings.Split(text, "\n")
		for i, l := range lines {
			switch {
			case strings.HasPrefix(l, "  python "):
				lines[i] = "  # python: not used, bin/runzeo runs zodbctl"
			case strings.HasPrefix(l, "  zdrun "):
				lines[i] = "  # zdrun: not used, zodbctl zeoctl supervises the server"
			}
		}
		return strings.Join(lines, "\n")
	case "bin/runzeo", "bin/zeoctl":
		var out []string
		for _, l := range strings.Split(text, "\n") {
			switch {
			case strings.HasPrefix(l, "PYTHON="):
				out = append(out, `ZODBCTL="`+exe+`"`)
			case strings.HasPrefix(l, "ZODB3_HOME="), strings.HasPrefix(l, "PYTHONPATH="):
			case l == "export PYTHONPATH INSTANCE_HOME":
				out = append(out, "export INSTANCE_HOME")
			case strings.HasPrefix(l, `exec "$PYTHON" -m ZEO.runzeo `):
				out = append(out, `exec "$ZODBCTL" serve `+strings.TrimPrefix(l, `exec "$PYTHON" -m ZEO.runzeo `))
			case strings.HasPrefix(l, `exec "$PYTHON" -m ZEO.zeoctl `):
				out = append(out, `exec "$ZODBCTL" zeoctl `+strings.TrimPrefix(l, `exec "$PYTHON" -m ZEO.zeoctl `))
			default:
				out = append(out, l)
			}
		}
		// Dropping ZODB3_HOME and PYTHONPATH leaves two blank lines in a row.
		return strings.ReplaceAll(strings.Join(out, "\n"), "\n\n\n", "\n\n")
	}
	return text
}

// mkzTree lists dir as "mode type path" lines like the fixture's tree.
func mkzTree(t *testing.T, dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if path == dir {
			return nil
		}
		info, _ := d.Info()
		typ := "file"
		if d.IsDir() {
			typ = "dir"
		}
		rel, _ := filepath.Rel(dir, path)
		out = append(out, fmt.Sprintf("%04o %s %s", info.Mode().Perm(), typ, rel))
		return nil
	})
	sort.Strings(out)
	return out
}

func mkzRun(args ...string) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	code = Run(append([]string{"zodbctl", "mkzeoinstance"}, args...), &o, &e)
	return o.String(), e.String(), code
}

func TestMkzeoinstanceGolden(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, variant := range []string{"port-only", "host-port", "default-address", "blobs-default",
		"blobs-explicit", "rerun-existing", "no-args", "help", "bad-address"} {
		t.Run(variant, func(t *testing.T) {
			m := mkzLoad(t, variant)
			home := filepath.Join(t.TempDir(), "inst")
			blobs := filepath.Join(t.TempDir(), "blobs")
			subst := strings.NewReplacer("$INSTANCE_PATH", home, "$BLOB_PATH", blobs)
			if variant == "rerun-existing" {
				if _, _, code := mkzRun(home, "8800"); code != 0 {
					t.Fatal("first run failed")
				}
			}
			var args []string
			for _, a := range m.Command[1:] {
				args = append(args, subst.Replace(a))
			}
			stdout, stderr, code := mkzRun(args...)
			if code != m.ExitCode || stdout != subst.Replace(m.Stdout) || stderr != m.Stderr {
				t.Fatalf("exit %d, stdout:\n%s\nstderr: %s\nwant exit %d, stdout:\n%s", code, stdout, stderr, m.ExitCode, subst.Replace(m.Stdout))
			}
			if len(m.Tree) == 0 {
				if _, err := os.Stat(home); err == nil {
					t.Errorf("%s created although the run failed", home)
				}
				return
			}
			var want []string
			for _, e := range m.Tree {
				want = append(want, fmt.Sprintf("%s %s %s", e.Mode, e.Type, e.Path))
			}
			sort.Strings(want)
			if got := mkzTree(t, home); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			for name, text := range m.Files {
				got, err := os.ReadFile(filepath.Join(home, name))
				if err != nil {
					t.Fatal(err)
				}
				if want := mkzExpectFile(name, subst.Replace(text), exe); string(got) != want {
					t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
				}
			}
			if _, err := os.Stat(blobs); err == nil {
				t.Errorf("explicit blob directory was created")
			}
		})
	}
}

// The generated zeo.conf loads with zodbctl's own reader (and, by the
// golden test, is the reference's text apart from two comment lines).
func TestMkzeoinstanceConfigLoads(t *testing.T) {
	home := filepath.Join(t.TempDir(), "inst")
	abs := filepath.Join(t.TempDir(), "Data2.fs")
	if _, stderr, code := mkzRun(home, "127.0.0.1:8800", "-b", "--storage", "1=Data1.fs", "--storage", "2="+abs, "--systemd"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	cfg, err := mkinstance.LoadServerConfig(filepath.Join(home, "etc", "zeo.conf"), mkinstance.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Storages) != 2 {
		t.Fatalf("storages %+v", cfg.Storages)
	}
	if fs := cfg.Storages[0].FileStorage; cfg.Storages[0].Name != "1" || fs.Path != home+"/var/Data1.fs" || fs.BlobDir != home+"/var/blobs/1" {
		t.Errorf("storage 1: %+v", fs)
	}
	if fs := cfg.Storages[1].FileStorage; cfg.Storages[1].Name != "2" || fs.Path != abs || fs.BlobDir != home+"/var/blobs/2" {
		t.Errorf("storage 2: %+v", fs)
	}
	for _, d := range []string{"var/blobs/1", "var/blobs/2"} {
		if st, err := os.Stat(filepath.Join(home, d)); err != nil || !st.IsDir() {
			t.Errorf("%s not created", d)
		}
	}
	unit, err := os.ReadFile(filepath.Join(home, "etc", "zeo.service"))
	if err != nil || !strings.Contains(string(unit), `ExecStart="`+home+`/bin/runzeo"`) {
		t.Errorf("unit: %v\n%s", err, unit)
	}
	if cfg.EventLog == nil || cfg.EventLog.Handlers[0].Path != home+"/log/zeo.log" || cfg.Runner == nil ||
		cfg.Runner.Program[0] != home+"/bin/runzeo" {
		t.Errorf("eventlog/runner: %+v %+v", cfg.EventLog, cfg.Runner)
	}
}

func TestMkzeoinstanceArgs(t *testing.T) {
	cases := []struct {
		args  []string
		usage int
		home  string
		addr  string
		blobs string
	}{
		{[]string{"h"}, 0, "h", "9999", ""},
		{[]string{"h", "-b"}, 0, "h", "9999", "$INSTANCE/var/blobs"},
		{[]string{"-b", "/x", "h", "08800"}, 0, "h", "8800", "/x"},
		{[]string{"h", "-b", "8100"}, 0, "h", "9999", "8100"},
		{[]string{"h", "-b", "--", "1:2"}, 0, "h", "1:2", "$INSTANCE/var/blobs"},
		{[]string{"h", "--blobs=/y"}, 0, "h", "9999", "/y"},
		{[]string{"h", "--blobs="}, 0, "h", "9999", ""},
		{[]string{"h", "--bl"}, 0, "h", "9999", "$INSTANCE/var/blobs"},
		{[]string{"h", "-b/z"}, 0, "h", "9999", "/z"},
		{[]string{"--he"}, 2, "", "", ""},
		{[]string{"h", "--s"}, 1, "", "", ""},
		{[]string{"h", "x y"}, 1, "", "", ""},
	}
	for _, c := range cases {
		o, usage, err := mkzeoinstanceArgs(c.args)
		if err != nil || usage != c.usage || usage == 0 && (o.Home != c.home || o.Address != c.addr || o.BlobDir != c.blobs) {
			t.Errorf("%q: %+v usage %d err %v", c.args, o, usage, err)
		}
	}
}

func TestMkzeoinstanceErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"duplicate storage", []string{dir + "/a", "--storage", "1=a.fs", "--storage", "1=b.fs"}, 1,
			"zodbctl: mkzeoinstance: --storage: duplicate storage name '1'\n"},
		{"duplicate storage, case", []string{dir + "/a", "--storage", "Main=a.fs", "--storage", "main=b.fs"}, 1,
			"zodbctl: mkzeoinstance: --storage: duplicate storage name 'main'\n"},
		{"bad storage", []string{dir + "/a", "--storage", "a b=x"}, 1,
			"zodbctl: mkzeoinstance: --storage 'a b=x': a storage name has no white space, parentheses, <, > or /\n"},
		{"storage without value", []string{dir + "/a", "--storage"}, 1, "zodbctl: mkzeoinstance: --storage needs NAME=PATH\n"},
		{"unknown option", []string{dir + "/a", "--nope"}, 1, ""},
		{"three positionals", []string{dir + "/a", "1", "2"}, 1, ""},
		{"help wins over missing home", []string{"-h"}, 2, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := mkzRun(c.args...)
			if code != c.code || stderr != c.stderr {
				t.Errorf("exit %d stderr %q, want %d %q", code, stderr, c.code, c.stderr)
			}
			if _, err := os.Stat(dir + "/a"); err == nil {
				t.Errorf("instance created")
			}
		})
	}
	// HOME below a regular file (works as root too).
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	if _, stderr, code := mkzRun(filepath.Join(file, "inst"), "8800"); code != 1 || stderr != "zodbctl: mkzeoinstance: "+file+" exists and is not a directory\n" {
		t.Errorf("below a file: exit %d %q", code, stderr)
	}
	// etc/zeo.conf is a directory: one line, and the scripts are not written.
	home := filepath.Join(dir, "odd")
	os.MkdirAll(filepath.Join(home, "etc", "zeo.conf"), 0o755)
	stdout, stderr, code := mkzRun(home, "8800")
	if code != 1 || stderr != "zodbctl: mkzeoinstance: read "+home+"/etc/zeo.conf: is a directory\n" || strings.Contains(stdout, "Wrote") {
		t.Errorf("conf is a directory: exit %d %q %q", code, stdout, stderr)
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o555)
		_, stderr, code := mkzRun(filepath.Join(ro, "inst"), "8800")
		if code != 1 || stderr != "zodbctl: mkzeoinstance: mkdir "+ro+"/inst: permission denied\n" {
			t.Errorf("unwritable: exit %d %q", code, stderr)
		}
	}
}

func TestMkzeoinstanceRerunAndForce(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	home := filepath.Join(t.TempDir(), "inst")
	mkzRun(home, "8800")
	conf := filepath.Join(home, "etc", "zeo.conf")
	orig, _ := os.ReadFile(conf)
	// Identical arguments: only "All done.".
	if out, _, code := mkzRun(home, "8800"); code != 0 || out != "All done.\n" {
		t.Errorf("rerun: %d %q", code, out)
	}
	// A script whose mode was lost is chmod-ed again, silently kept otherwise.
	os.Chmod(filepath.Join(home, "bin", "runzeo"), 0o644)
	if out, _, _ := mkzRun(home, "8800"); out != "Changed mode for "+home+"/bin/runzeo to 755\nAll done.\n" {
		t.Errorf("chmod rerun: %q", out)
	}
	// An empty file is overwritten.
	os.WriteFile(conf, []byte("  \n"), 0o644)
	if out, _, _ := mkzRun(home, "8800"); out != "Wrote file "+conf+"\nAll done.\n" {
		t.Errorf("empty file: %q", out)
	}
	// --force overwrites a differing file.
	out, _, code := mkzRun(home, "9000", "--force")
	now, _ := os.ReadFile(conf)
	if code != 0 || !strings.Contains(out, "Wrote file "+conf+"\n") ||
		string(now) != strings.Replace(string(orig), "address 8800", "address 9000", 1) {
		t.Errorf("force: %q\n%s", out, now)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(filepath.Join(home, "etc"))
	if len(entries) != 1 {
		t.Errorf("etc holds %v", entries)
	}
}
