package server

// What a node has taken in: the wire cache follows the node's subscription
// to each type, recording which of the node's snapshots it is known to
// have when a request answers a response (its ACK or NACK: the request of
// the type that carries a response nonce) and when a snapshot sends it
// nothing. A node has taken config version V in whole once every type it
// subscribes to has a snapshot of V or newer and none rejected the last
// response it answered (Server.Distribution). Recording it at the answer,
// not sampling "nothing in flight" when Distribution is read, keeps it
// moving while pushes follow each other faster than it is read or than
// the proxy answers.
//
// A type is followed per node, not per stream (the SotW server gives each
// request a channel of its own, so nothing in a watch names its stream):
// a node reconnecting while its old stream ends shares the state, which
// the new stream's first response and answer bring up to date.

// subState is the node's progress through its snapshots for one type.
// Generations count the node's snapshots (wireNode.gen).
type subState struct {
	// pending: a response was sent and no request has answered it yet.
	// sentGen and sentCV are the generation and config version of the
	// snapshot it came from.
	pending         bool
	sentGen, sentCV uint64
	// haveGen is the newest generation the node is known to have of the
	// type (0: none yet), haveCV the config version it stood for (while
	// haveGen is the node's current generation, the node's cv is).
	haveGen, haveCV uint64
	// nacked: the last response answered was rejected.
	nacked bool
}

// subState returns the state of typeURL, making it. The caller holds the cache's lock.
func (n *wireNode) subState(typeURL string) *subState {
	s, ok := n.subs[typeURL]
	if !ok {
		s = &subState{}
		n.subs[typeURL] = s
	}
	return s
}

// answered records a request of typeURL. One carrying a response nonce
// answers the last response: it rejects it if nack, else accepts it.
func (n *wireNode) answered(typeURL string, hasNonce, nack bool) {
	s := n.subState(typeURL)
	if !hasNonce {
		return // a stream's first request of the type
	}
	if nack {
		s.pending, s.nacked = false, true
		return
	}
	if s.pending {
		s.pending, s.nacked = false, false
		if s.sentGen > s.haveGen {
			s.haveGen, s.haveCV = s.sentGen, s.sentCV
		}
	}
}

// sent records a response of typeURL from the current snapshot.
func (n *wireNode) sent(typeURL string) {
	s := n.subState(typeURL)
	s.pending, s.sentGen, s.sentCV = true, n.gen, n.cv
}

// current records that the node has what the current snapshot holds of
// typeURL (there is nothing to send it).
func (n *wireNode) current(typeURL string) {
	if n.snap == nil {
		return
	}
	s := n.subState(typeURL)
	s.haveGen, s.haveCV = n.gen, n.cv
}

// newSnapshot makes ws, standing for config version cv, the node's
// current snapshot, a new generation.
func (n *wireNode) newSnapshot(ws *wireSnapshot, cv uint64) {
	// The generation ending stood for n.cv at the last.
	for _, s := range n.subs {
		if s.haveGen == n.gen {
			s.haveCV = n.cv
		}
		if s.sentGen == n.gen {
			s.sentCV = n.cv
		}
	}
	n.snap, n.gen, n.cv = ws, n.gen+1, cv
}

// progress raises taken to the newest config version every subscription
// has, unless one has none yet or rejected its last response.
func (n *wireNode) progress() {
	if len(n.subs) == 0 {
		return
	}
	lowest := uint64(0)
	for _, s := range n.subs {
		if s.nacked || s.haveGen == 0 {
			return
		}
		cv := s.haveCV
		if s.haveGen == n.gen {
			cv = n.cv
		}
		if lowest == 0 || cv < lowest {
			lowest = cv
		}
	}
	n.taken = max(n.taken, lowest)
}
