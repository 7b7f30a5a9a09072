package mkinstance

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestNormalizeAddress(t *testing.T) {
	cases := map[string]string{"8800": "8800", "08800": "8800", "0": "0", "000": "0",
		"localhost:": "localhost:", "127.0.0.1:8800": "127.0.0.1:8800", ":1": ":1", "[::1]:8800": "[::1]:8800"}
	for in, want := range cases {
		if got, err := NormalizeAddress(in); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "not-a-port", "88 00", "-1", "/tmp/zeo.sock", "8800\n"} {
		if _, err := NormalizeAddress(bad); err != ErrBadAddress {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, far := range []string{"65536", "99999", "localhost:70000", "123456789012345678901234567890"} {
		if _, err := NormalizeAddress(far); err == nil || err == ErrBadAddress || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("%q: %v, want a port range error", far, err)
		}
	}
	if got, err := NormalizeAddress("065535"); err != nil || got != "65535" {
		t.Errorf("065535: %q %v", got, err)
	}
}

// The bin/ scripts run the configured binary with the config file, pass
// their arguments through and export INSTANCE_HOME — also for an instance
// home with characters the shell would otherwise interpret.
func TestScriptsRun(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "fake zodbctl")
	os.WriteFile(fake, []byte("#!/bin/sh\nprintf '%s|' \"$@\" \"$INSTANCE_HOME\"\n"), 0o755)
	home := filepath.Join(dir, `in st$HOME"x`)
	var lines []string
	err := Create(InstanceOptions{Home: home, Address: "8800", Executable: fake,
		Report: func(l string) { lines = append(lines, l) }})
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(home, "etc", "zeo.conf")
	for script, cmd := range map[string]string{"runzeo": "serve", "zeoctl": "zeoctl"} {
		out, err := exec.Command(filepath.Join(home, "bin", script), "-X", "a b=c", "status").CombinedOutput()
		want := cmd + "|-C|" + conf + "|-X|a b=c|status|" + home + "|"
		if err != nil || string(out) != want {
			t.Errorf("%s: %v %q, want %q", script, err, out, want)
		}
	}
	// $ in the home is escaped for ZConfig, so the file still loads.
	os.MkdirAll(filepath.Join(home, "var"), 0o755)
	cfg, err := LoadServerConfig(conf, Options{})
	if err != nil || cfg.Instance != home || cfg.Storages[0].FileStorage.Path != home+"/var/Data.fs" {
		t.Errorf("load: %v %+v", err, cfg)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "Wrote file "+conf) {
		t.Errorf("report: %v", lines)
	}
}

func TestCreateRejects(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		o    InstanceOptions
		want string
	}{
		{InstanceOptions{Home: dir + "/a\nb", Address: "1"}, "a line break"},
		{InstanceOptions{Home: dir + "/a", Address: "1", Storages: []StorageSpec{{"A", "x"}, {"a", "y"}}}, "duplicate storage name 'a'"},
	}
	for _, c := range cases {
		if err := Create(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v", c.o, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("created %v", entries)
	}
	for _, bad := range []string{"x", "=x", "a=", "a b=x", "a/b=x", "(a)=x"} {
		if _, err := ParseStorageSpec(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if s, err := ParseStorageSpec("Main=sub/Data=1.fs"); err != nil || s != (StorageSpec{"Main", "sub/Data=1.fs"}) {
		t.Errorf("%+v %v", s, err)
	}
}

func TestSystemdUnit(t *testing.T) {
	got := SystemdUnit(InstanceOptions{Home: `/srv/zeo 100%`})
	want := `[Unit]
Description=ZEO server /srv/zeo 100%%
After=network.target

[Service]
Type=simple
WorkingDirectory=/srv/zeo 100%%
ExecStart="/srv/zeo 100%%/bin/runzeo"
KillSignal=SIGTERM
TimeoutStopSec=300
Restart=on-failure
RestartPreventExitStatus=2

[Install]
WantedBy=multi-user.target
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
