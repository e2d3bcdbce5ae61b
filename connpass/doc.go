// Package connpass hands open TCP connections from one smoothserve process
// to the next at an upgrade, over a Unix socket pair made for that upgrade:
// a client's keep-alive connection goes on in the new process instead of
// being closed, so its client neither reconnects nor races a close; an idle
// connection to an instance goes on being pooled, so the instance sees no
// wave of new connections.
//
// Each message (SOCK_SEQPACKET: one per send) is one connection: its
// descriptor (SCM_RIGHTS) and what it is: a client's, with the proxy port
// it was accepted on and the bytes already read from it, which its new
// owner reads first; or an idle one, with the instance's address. A
// client's connection joined to an instance's (a tunnel, or a response
// being streamed) is one message with both descriptors, the bytes read
// from each and not yet used, and, for a stream, the proxy's state of it.
//
// Sends go one at a time, each with its own write deadline from when its
// turn comes: thousands passed at once wait for each other, not for a
// deadline they share; a write goes on waiting while the receiver reads,
// and a receiver that takes nothing for that long fails the send and every
// one after it. A client's connection whose next request has come
// (SendWaiting) takes its turn ahead of those only idle: its client waits
// for the answer.
//
// Invariant: a connection has one owner at a time. The sender closes its
// descriptor only after Send succeeded, and until then nothing of the
// connection was read or written by the receiver; when Send fails, the
// connection is still the sender's alone, and untouched.
package connpass
