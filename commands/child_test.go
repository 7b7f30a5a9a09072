package commands

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childArgsEnv carries the zodbctl arguments of a child process of the kill
// tests, separated by \x1f.
const childArgsEnv = "ZODBCTL_CHILD_ARGS"

// TestZodbctlChild is the child process of the kill tests: it prints START,
// runs zodbctl with the arguments in $ZODBCTL_CHILD_ARGS, and fails if that
// fails.
func TestZodbctlChild(t *testing.T) {
	args := os.Getenv(childArgsEnv)
	if args == "" {
		t.Skip("child process of the kill tests")
	}
	fmt.Println("START")
	os.Stdout.Sync()
	var out, errb bytes.Buffer
	if exit := Run(append([]string{"zodbctl"}, strings.Split(args, "\x1f")...), &out, &errb); exit != 0 {
		t.Fatalf("zodbctl %s: exit %d: %s", strings.ReplaceAll(args, "\x1f", " "), exit, errb.String())
	}
}

// zodbctlChild is `zodbctl args...` run by a child process of this test
// binary, to be killed.
func zodbctlChild(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestZodbctlChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childArgsEnv+"="+strings.Join(args, "\x1f"))
	return cmd
}

// killWithin starts cmd, waits until it says START, lets it run for a random
// time below d and kills it with SIGKILL.
func killWithin(t *testing.T, cmd *exec.Cmd, d time.Duration) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "START" {
	}
	time.Sleep(time.Duration(rand.Int64N(int64(d))))
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
}
