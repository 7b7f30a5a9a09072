package zeowire

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Typed helpers over Call for the common reads. They return the typed
// errors of this package (e.g. *POSKeyError) for exception replies.

// LastTransaction returns the storage's last committed tid.
func (c *ClientConn) LastTransaction(ctx context.Context) (Tid, error) {
	r, err := c.Call(ctx, "lastTransaction")
	if err != nil {
		return 0, err
	}
	return AsTid(r)
}

// LoadBefore loads the revision of oid current before tid (ok false: none);
// like the Python client it uses (oid, tid) as the message id.
func (c *ClientConn) LoadBefore(ctx context.Context, oid Oid, before Tid) (rev Revision, ok bool, err error) {
	ob, tb := oid.Bytes(), before.Bytes()
	r, err := c.CallID(ctx, Tuple{ob, tb}, "loadBefore", ob, tb)
	if err != nil || r == nil {
		return Revision{}, false, err
	}
	t, isTuple := r.(Tuple)
	if !isTuple || len(t) != 3 {
		return Revision{}, false, fmt.Errorf("loadBefore: malformed reply %s", Repr(r))
	}
	data, isBytes := t[0].([]byte)
	start, err1 := AsTid(t[1])
	if !isBytes || err1 != nil {
		return Revision{}, false, fmt.Errorf("loadBefore: malformed reply %s", Repr(r))
	}
	rev = Revision{Data: data, Start: start}
	if t[2] != nil {
		if rev.End, err = AsTid(t[2]); err != nil {
			return Revision{}, false, fmt.Errorf("loadBefore: malformed reply %s", Repr(r))
		}
	}
	return rev, true, nil
}

// GetInfo returns the get_info dict.
func (c *ClientConn) GetInfo(ctx context.Context) (Dict, error) {
	return c.callDict(ctx, "get_info")
}

// ServerStatus returns the server_status dict of the registered storage.
func (c *ClientConn) ServerStatus(ctx context.Context) (Dict, error) {
	return c.callDict(ctx, "server_status")
}

func (c *ClientConn) callDict(ctx context.Context, name string) (Dict, error) {
	r, err := c.Call(ctx, name)
	if err != nil {
		return nil, err
	}
	d, ok := r.(Dict)
	if !ok {
		return nil, fmt.Errorf("%s: malformed reply %s", name, Repr(r))
	}
	return d, nil
}

// Ruok asks a server for its status without registering (the ruok probe
// of zeo-nagios): it returns the JSON text, {storage: server_status, ...}.
func Ruok(ctx context.Context, addr string) ([]byte, error) {
	network := "tcp"
	if containsSlash(addr) {
		network = "unix"
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	} else {
		nc.SetDeadline(time.Now().Add(time.Minute))
	}
	fr := NewFrameReader(nc, 0)
	if _, err := fr.ReadFrame(); err != nil {
		return nil, fmt.Errorf("%s: reading the protocol announcement: %w", addr, err)
	}
	if _, err := nc.Write(AppendFrame(nil, []byte(ruokProbe))); err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	p, err := fr.ReadFrame()
	if err != nil {
		return nil, fmt.Errorf("%s: reading the status: %w", addr, err)
	}
	return append([]byte(nil), p...), nil
}
