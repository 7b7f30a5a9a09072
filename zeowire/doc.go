// Package zeowire implements the ZEO 5 network protocol (the protocol spoken by
// Python ZEO 5 and 6 clients and servers) and a ZEO server on top of it.
//
// One implementation serves both directions: the framing ([FrameReader],
// [AppendFrame]), the handshake (server side in [Server], client side in
// [Dial] and [NewClientConn]), the message model ([Message]) and the two
// encodings ([Codec]: pickle protocol 3 for "Z5", msgpack for "M5") are used
// by [Server] and by the client connection [ClientConn] alike. The pickle
// codec is fsformat/pickle; the value types are its types.
//
// # Values on the wire
//
// Decoded values use these Go types, and encoders accept them:
//
//	None          nil
//	bool          bool
//	int           int64 (or *big.Int outside the int64 range)
//	float         float64
//	str           string
//	bytes         []byte
//	tuple         Tuple
//	list          List
//	dict          Dict (ordered key/value pairs; Python preserves insertion order
//	              and the Python peers look at some of it, e.g. server_status)
//
// Tuples and lists are distinct types because the Python peer distinguishes
// them (a list message id is unhashable; get_info interfaces must be tuples).
// In msgpack mode both travel as arrays and are decoded as [Tuple], which is
// what Python's msgpack unpacker does with use_list=False.
//
// # The server
//
// [Server] has the net/http shape: fill in Storages and call Serve(ln); stop
// with Shutdown(ctx). Each connection is served by one reader goroutine that
// decodes frames and runs calls in arrival order and writes its replies
// itself when the socket is idle; messages from other connections
// (invalidations) go through a bounded queue drained by a per-connection
// writer. Slow calls (vote waiting for the commit lock, pack, undoLog,
// undoInfo) are answered later from their own goroutine; replies are matched
// by message id, as the protocol allows. Large transactions spill their
// records to a temporary file (Server.SpillThreshold).
//
// Commits follow the reference server: between tpc_begin and vote only an
// operation log is kept per connection; vote takes the storage's commit lock
// (first come, first served), assigns the tid, replays the log into the
// [Storage] and votes; tpc_finish commits, queues invalidateTransaction to every
// other connection of the storage before the lock is released, then replies.
// Unlike the reference, every disconnect (whoever closed the connection)
// aborts the connection's transaction and releases the commit lock.
//
// Conflict resolution: a Go server cannot run Python _p_resolveConflict, so
// the recommended setting is [Server.ClientConflictResolution] (zeo.conf
// client-conflict-resolution): write conflicts are returned to the client as
// the list of {oid, serials, data} dicts of the spec (section 9.5) and the
// Python client resolves BTrees and Length conflicts itself and votes again.
// Without it, the server resolves BTrees.Length.Length natively (a counter:
// committed + new - old, byte-identical to the Python result) and every
// other write conflict is a ConflictError.
//
// Read-only (spec 9.6): Server.ReadOnly, Server.ReadOnlyStorages and a
// storage implementing [ReadOnlyReporter] refuse writable registrations; on
// a read-only connection every write call (tpc_begin, storea,
// deleteObject, restorea, checkCurrentSerialInTransaction, undoa,
// storeBlob*, vote, new_oids) fails with ReadOnlyError before its arguments
// are looked at, and an async one closes the connection. pack is not a
// write for the server, as in the reference; a read-only storage refuses it.
//
// # Blobs
//
// Storages with a blob directory implement [BlobStorage]; uploads
// (storeBlobStart/Chunk/End) go to a temporary file in its BlobTempDir and
// are handed to the storage at vote ([BlobTxn]); files of transactions that
// do not commit are removed. sendBlob streams the committed file in 59,000
// byte chunks; messages from other goroutines wait until the stream ends.
//
// # Running it
//
// [Listen] and [Server.ListenAndServe] take zeo.conf addresses (host:port,
// port, or a Unix socket path); [ServerTLSConfig] and [ClientTLSConfig]
// build the TLS settings of an <ssl> section; [Server.Stats] gives the
// counters for monitoring. Frames larger than [Server.MaxFrameSize]
// (default 256 MiB) close the connection that sent them.
//
// Invalidations are sent through bounded per-connection queues; a client whose
// queue overflows is disconnected (it reconnects and catches up through
// getInvalidations) instead of making committers wait for it.
//
// # Limits per connection
//
// Every limit is a Server field whose zero value means the default:
//
//   - MaxFrameSize (256 MiB): a larger frame closes that connection. Before
//     register the cap is PreRegisterMaxFrameSize (64 KiB), so unregistered
//     peers cannot make the server buffer much; frames are read as their
//     bytes arrive, never allocated from the header alone.
//   - RegisterTimeout (60 s): the TLS handshake, the ZEO handshake and a
//     successful register must be done by then, or the connection is
//     closed. Registered connections have no idle timeout (spec 1.4).
//   - WriteTimeout (60 s): a socket write that makes no progress for this
//     long fails and closes the connection, which aborts its transaction
//     and releases the commit lock: a client that stops reading never holds
//     up the others' commits for longer.
//   - MaxPendingCalls (16): calls answered from their own goroutine (vote
//     behind the commit lock, undoLog, undoInfo, pack) running at once. At
//     the cap the reader stops reading the connection until one finishes —
//     backpressure, not a disconnect. Every other call is answered by the
//     reader before it reads the next frame, and a reply it cannot write
//     stops it too, so unanswered requests are bounded by the socket
//     buffers and this cap.
//   - OutboundQueue (1024 messages, 64 MiB): messages from other
//     connections (invalidations) never wait; a full queue disconnects.
package zeowire
