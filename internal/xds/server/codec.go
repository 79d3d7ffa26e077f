package server

import (
	"errors"
	"sync"
	"unicode/utf8"
	"unique"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// codec is gRPC's proto codec except for state-of-the-world responses: those
// are written without copying their resources. A DiscoveryResponse's
// resources are Anys shared by every stream (wireCache), so the encoding is
// a small per-stream header per resource plus a reference to the shared
// bytes; proto.Marshal would copy every resource into a buffer per stream,
// which for hundreds of streams is most of a push's CPU and memory.
type codec struct {
	base  encoding.CodecV2
	names *nameTable
}

var _ encoding.CodecV2 = codec{}

func newCodec() codec {
	return codec{base: encoding.GetCodecV2(protocodec.Name), names: &nameTable{m: map[string]string{}}}
}

// Name is "proto": the wire format is unchanged.
func (c codec) Name() string { return c.base.Name() }

// Unmarshal is the proto codec's, except that the resource names of
// requests are interned: every proxy subscribes to the same EDS and RDS
// names, and go-control-plane keeps each stream's last request and
// subscription, so hundreds of proxies would otherwise hold hundreds of
// copies of every cluster name. A state-of-the-world ACK repeats every
// name the stream subscribes to (a thousand load assignments): its names
// are looked up in the table straight from the wire, so a name seen
// before costs a lookup, not a string, a UTF-8 check and garbage.
func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*discovery.DiscoveryRequest); ok {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		return c.unmarshalRequest(buf.ReadOnlyData(), r)
	}
	if err := c.base.Unmarshal(data, v); err != nil {
		return err
	}
	if r, ok := v.(*discovery.DeltaDiscoveryRequest); ok {
		intern(r.ResourceNamesSubscribe)
	}
	return nil
}

// resourceNamesField is DiscoveryRequest.resource_names.
const resourceNamesField = 3

// unmarshalRequest decodes b into r: resource_names through the name
// table, every other field with proto.Unmarshal.
func (c codec) unmarshalRequest(b []byte, r *discovery.DiscoveryRequest) error {
	var (
		raw  = make([][]byte, 0, countNames(b))
		rest []byte // the other fields, when some field was taken out
		from = 0    // start of the bytes not yet copied to rest
	)
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return c.base.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, r) // the proto codec's error
		}
		if num == resourceNamesField && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b[off+n:])
			if m < 0 {
				return c.base.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, r)
			}
			rest = append(rest, b[from:off]...)
			raw = append(raw, v)
			off += n + m
			from = off
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b[off+n:])
		if m < 0 {
			return c.base.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, r)
		}
		off += n + m
	}
	if len(raw) == 0 {
		rest = b
	} else {
		rest = append(rest, b[from:]...)
	}
	if err := proto.Unmarshal(rest, r); err != nil {
		return err
	}
	if len(raw) == 0 {
		return nil
	}
	names, err := c.names.lookup(raw)
	if err != nil {
		return err
	}
	r.ResourceNames = names
	return nil
}

// countNames counts the resource_names fields of an encoded
// DiscoveryRequest (what it cannot parse, unmarshalRequest reports).
func countNames(b []byte) int {
	n := 0
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return n
		}
		b = b[l:]
		l = protowire.ConsumeFieldValue(num, typ, b)
		if l < 0 {
			return n
		}
		b = b[l:]
		if num == resourceNamesField && typ == protowire.BytesType {
			n++
		}
	}
	return n
}

// nameTable interns resource names. It is safe for concurrent use.
type nameTable struct {
	mu sync.RWMutex
	m  map[string]string
}

// maxNames bounds the table: past it, it starts again empty (names in use
// stay with their subscriptions; new requests intern them again).
const maxNames = 1 << 20

// lookup returns the names raw holds, each the table's copy.
func (t *nameTable) lookup(raw [][]byte) ([]string, error) {
	out := make([]string, len(raw))
	missing := false
	t.mu.RLock()
	for i, b := range raw {
		s, ok := t.m[string(b)] // no allocation: the conversion is only the key
		if !ok {
			missing = true
			continue
		}
		out[i] = s
	}
	t.mu.RUnlock()
	if !missing {
		return out, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, b := range raw {
		if out[i] != "" || len(b) == 0 {
			continue
		}
		if s, ok := t.m[string(b)]; ok {
			out[i] = s
			continue
		}
		if !utf8.Valid(b) {
			return nil, errors.New("proto: field envoy.service.discovery.v3.DiscoveryRequest.resource_names contains invalid UTF-8")
		}
		if len(t.m) >= maxNames {
			clear(t.m)
		}
		s := string(b)
		t.m[s] = s
		out[i] = s
	}
	return out, nil
}

func intern(names []string) {
	for i, n := range names {
		names[i] = unique.Make(n).Value()
	}
}

// Marshal encodes a DiscoveryResponse as version_info (1), resources (2,
// referencing each Any's value), then every other field; other messages
// go to the proto codec. Fields may appear in any order on the wire.
func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	r, ok := v.(*discovery.DiscoveryResponse)
	if !ok || len(r.GetResources()) == 0 || len(r.ProtoReflect().GetUnknown()) > 0 {
		return c.base.Marshal(v)
	}
	rest := &discovery.DiscoveryResponse{
		Canary: r.GetCanary(), TypeUrl: r.GetTypeUrl(), Nonce: r.GetNonce(),
		ControlPlane: r.GetControlPlane(), ResourceErrors: r.GetResourceErrors(),
	}
	tail, err := proto.MarshalOptions{Deterministic: true}.Marshal(rest)
	if err != nil {
		return nil, err
	}
	out := make(mem.BufferSlice, 0, 2*len(r.GetResources())+2)
	size := protowire.SizeTag(1) + protowire.SizeBytes(len(r.GetVersionInfo())) + len(tail)
	for _, a := range r.GetResources() {
		n := anyHeaderLen(a)
		size += protowire.SizeTag(2) + protowire.SizeVarint(uint64(n+len(a.GetValue()))) + n
	}
	hdr := make([]byte, 0, size) // every header and the tail, in one allocation
	if vi := r.GetVersionInfo(); vi != "" {
		hdr = protowire.AppendTag(hdr, 1, protowire.BytesType)
		hdr = protowire.AppendString(hdr, vi)
	}
	for _, a := range r.GetResources() {
		if len(a.ProtoReflect().GetUnknown()) > 0 {
			return c.base.Marshal(v)
		}
		// Any: type_url (1), value (2).
		anyLen := anyHeaderLen(a) + len(a.GetValue())
		hdr = protowire.AppendTag(hdr, 2, protowire.BytesType)
		hdr = protowire.AppendVarint(hdr, uint64(anyLen))
		if a.GetTypeUrl() != "" {
			hdr = protowire.AppendTag(hdr, 1, protowire.BytesType)
			hdr = protowire.AppendString(hdr, a.GetTypeUrl())
		}
		if len(a.GetValue()) == 0 {
			continue
		}
		hdr = protowire.AppendTag(hdr, 2, protowire.BytesType)
		hdr = protowire.AppendVarint(hdr, uint64(len(a.GetValue())))
		out = append(out, mem.SliceBuffer(hdr), mem.SliceBuffer(a.GetValue()))
		hdr = hdr[len(hdr):] // the next header starts a new slice of the same array
	}
	hdr = append(hdr, tail...)
	out = append(out, mem.SliceBuffer(hdr))
	return out, nil
}

// anyHeaderLen is the encoded size of an Any without its value's bytes.
func anyHeaderLen(a *anypb.Any) int {
	n := 0
	if a.GetTypeUrl() != "" {
		n += protowire.SizeTag(1) + protowire.SizeBytes(len(a.GetTypeUrl()))
	}
	if len(a.GetValue()) > 0 {
		n += protowire.SizeTag(2) + protowire.SizeVarint(uint64(len(a.GetValue())))
	}
	return n
}
