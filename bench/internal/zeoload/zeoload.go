// Package zeoload holds the raw-protocol client steps the load generators
// in bench/ share (bench/serve-load, bench/load100): connect and register,
// allocate oids, commit a small transaction, and read a process's CPU time.
package zeoload

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/zodbctl/zodbctl/zeowire"
)

// Dial connects to addr and registers to storage (read-write). heartbeat
// false turns the client's heartbeats off, so they do not count as load.
func Dial(ctx context.Context, addr, storage string, heartbeat bool) (*zeowire.ClientConn, error) {
	opts := zeowire.ClientOptions{}
	if !heartbeat {
		opts.Heartbeat = -1
	}
	c, err := zeowire.Dial(ctx, addr, opts)
	if err != nil {
		return nil, err
	}
	if _, err := c.Register(ctx, storage, false); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

var txnIDs atomic.Int64

// Commit stores data for every oid with the serials given, in one
// transaction whose user is user. A vote that reports conflicts
// (client-conflict-resolution servers return them as a list) is a
// *zeowire.ConflictError, like the exception reply.
func Commit(ctx context.Context, c *zeowire.ClientConn, user string, oids []zeowire.Oid, serials []zeowire.Tid, data []byte) (zeowire.Tid, error) {
	id := txnIDs.Add(1)
	if err := c.Async("tpc_begin", id, []byte(user), []byte{}, zeowire.Dict{}, nil, " "); err != nil {
		return 0, err
	}
	for i, oid := range oids {
		if err := c.Async("storea", oid.Bytes(), serials[i].Bytes(), data, id); err != nil {
			return 0, err
		}
	}
	r, err := c.Call(ctx, "vote", id)
	if err != nil {
		c.Call(ctx, "tpc_abort", id)
		return 0, err
	}
	if l, ok := r.(zeowire.List); ok && len(l) > 0 {
		c.Call(ctx, "tpc_abort", id)
		return 0, &zeowire.ConflictError{}
	}
	r, err = c.Call(ctx, "tpc_finish", id)
	if err != nil {
		return 0, err
	}
	return zeowire.AsTid(r)
}

// NewOids allocates n oids, at most 100 per call as ClientStorage does.
func NewOids(ctx context.Context, c *zeowire.ClientConn, n int) ([]zeowire.Oid, error) {
	var out []zeowire.Oid
	for len(out) < n {
		r, err := c.Call(ctx, "new_oids", int64(min(n-len(out), 100)))
		if err != nil {
			return nil, err
		}
		var l []any
		switch x := r.(type) {
		case zeowire.List:
			l = x
		case zeowire.Tuple:
			l = x
		default:
			return nil, fmt.Errorf("new_oids: %s", zeowire.Repr(r))
		}
		for _, v := range l {
			oid, err := zeowire.AsOid(v)
			if err != nil {
				return nil, err
			}
			out = append(out, oid)
		}
	}
	return out, nil
}

// ClockTicks is USER_HZ, 100 on every Linux platform Go supports.
const ClockTicks = 100

// CPUTicks is utime+stime of pid in clock ticks (0 for pid <= 0).
func CPUTicks(pid int) (int64, error) {
	if pid <= 0 {
		return 0, nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	k, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return u + k, nil
}
