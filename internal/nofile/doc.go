// Package nofile gives a process every descriptor it may have: the tests
// and the bench open thousands of connections, and the programs they start
// (wrk, the proxies, helper processes) need as many. Exhausted tells an
// error of having none left; a Room frees some then (the daemon's closes
// idle connections: proxy.Server.MakeRoom), and tries again what needed
// one (Retry), an Accept among them (Listener). Where none could be
// freed, Said has the log say so once in a while (WarnEvery), not at
// every failure.
//
// Invariant: after Raise, the soft limit of open files is the hard one,
// for this process and every child it starts from then on.
package nofile
