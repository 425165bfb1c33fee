package firewall

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The agent reads its table and watches for changes over nf_tables' netlink interface, in
// process, instead of running `nft --json list table` and `nft monitor`: a read costs about a
// millisecond instead of a process start (25-30 ms of CPU on a small VM), which is most of
// what a repair used to wait for. Writes still go through `nft -f`, so the ruleset stays the
// text knftables renders.
//
// Only what the State needs is decoded. The fingerprint is built from an allowlist of each
// object's attributes, as the kernel dumps them, leaving out handles, use counts, counter values
// and the dynamic sets' elements: what changes without anyone editing the table.

// Attribute numbers from include/uapi/linux/netfilter/nf_tables.h, in one list (golang.org/x/sys
// lacks some of them).
const (
	nfprotoInet = 1 // NFPROTO_INET

	attrListElem = 1 // NFTA_LIST_ELEM
	attrExprName = 1 // NFTA_EXPR_NAME
	attrExprData = 2 // NFTA_EXPR_DATA
	attrDataVal  = 1 // NFTA_DATA_VALUE

	attrTableName     = 1
	attrTableFlags    = 2
	attrTableUserdata = 6

	attrChainTable    = 1
	attrChainName     = 3
	attrChainHook     = 4
	attrChainPolicy   = 5
	attrChainType     = 7
	attrChainFlags    = 10
	attrChainUserdata = 12

	attrRuleTable       = 1
	attrRuleChain       = 2
	attrRuleExpressions = 4
	attrRuleCompat      = 5
	attrRuleUserdata    = 7

	attrSetTable       = 1
	attrSetName        = 2
	attrSetFlags       = 3
	attrSetKeyType     = 4
	attrSetKeyLen      = 5
	attrSetDataType    = 6
	attrSetDataLen     = 7
	attrSetPolicy      = 8
	attrSetDesc        = 9
	attrSetTimeout     = 11
	attrSetGCInterval  = 12
	attrSetUserdata    = 13
	attrSetObjType     = 15
	attrSetExpr        = 17
	attrSetExpressions = 18

	attrElemListTable    = 1
	attrElemListSet      = 2
	attrElemListElements = 3
	attrElemKey          = 1
	attrElemData         = 2
	attrElemFlags        = 3
	attrElemTimeout      = 4
	attrElemUserdata     = 6
	attrElemExpr         = 7
	attrElemObjref       = 9
	attrElemKeyEnd       = 10
	attrElemExpressions  = 11

	attrObjTable    = 1
	attrObjName     = 2
	attrObjType     = 3
	attrObjData     = 4
	attrObjUserdata = 8
	objTypeCounter  = 1

	attrFlowtableTable = 1
	attrFlowtableName  = 2
	attrFlowtableHook  = 3
	attrFlowtableFlags = 7

	attrCounterPackets = 2 // NFTA_COUNTER_PACKETS

	attrDynsetExpr        = 7
	attrDynsetExpressions = 10

	attrGenID  = 1 // NFTA_GEN_ID
	attrGenPID = 2 // NFTA_GEN_PROC_PID
)

// dialNetlink opens an nf_tables netlink socket in the calling thread's network namespace,
// subscribed to groups (0 for none).
func dialNetlink(groups uint32) (*netlink.Conn, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{Groups: groups})
	if err != nil {
		return nil, fmt.Errorf("nf_tables netlink: %w", err)
	}
	return c, nil
}

func nftType(msg int) netlink.HeaderType {
	return netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msg)
}

// request sends one nf_tables request and returns the replies' attributes (after the 4-byte
// nfgenmsg header), and whether a dump was interrupted by a concurrent change.
func request(c *netlink.Conn, msg int, flags netlink.HeaderFlags, family uint8, attrs []netlink.Attribute) ([][]byte, bool, error) {
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return nil, false, err
	}
	req := netlink.Message{
		Header: netlink.Header{Type: nftType(msg), Flags: netlink.Request | flags},
		Data:   append([]byte{family, unix.NFNETLINK_V0, 0, 0}, data...),
	}
	replies, err := c.Execute(req)
	if err != nil {
		return nil, false, err
	}
	var out [][]byte
	interrupted := false
	for _, m := range replies {
		if m.Header.Flags&netlink.DumpInterrupted != 0 {
			interrupted = true
		}
		if len(m.Data) < 4 || m.Header.Type == netlink.Done {
			continue
		}
		out = append(out, m.Data[4:])
	}
	return out, interrupted, nil
}

// attrs decodes one level of attributes into type → value (the last one wins) and the order
// in which they came.
type attrs struct {
	val   map[uint16][]byte
	order []uint16
}

// attrTypeMask masks off the Nested and NetByteOrder flags of an attribute's type.
const attrTypeMask = ^(netlink.Nested | netlink.NetByteOrder)

func decode(b []byte) (attrs, error) {
	list, err := netlink.UnmarshalAttributes(b)
	if err != nil {
		return attrs{}, err
	}
	a := attrs{val: make(map[uint16][]byte, len(list))}
	for _, at := range list {
		t := at.Type & attrTypeMask
		a.val[t] = at.Data
		a.order = append(a.order, t)
	}
	return a, nil
}

func (a attrs) str(t uint16) string { return strings.TrimRight(string(a.val[t]), "\x00") }

// list decodes a nested NFTA_LIST_ELEM list.
func list(b []byte) ([][]byte, error) {
	items, err := netlink.UnmarshalAttributes(b)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(items))
	for _, it := range items {
		if it.Type&attrTypeMask == attrListElem {
			out = append(out, it.Data)
		}
	}
	return out, nil
}

// fingerprint accumulates the table's structure.
type fingerprint struct{ b bytes.Buffer }

func (f *fingerprint) add(kind string, fields ...[]byte) {
	f.b.WriteString(kind)
	for _, v := range fields {
		f.b.WriteByte('|')
		f.b.WriteString(hex.EncodeToString(v))
	}
	f.b.WriteByte('\n')
}

// pick returns the values of the allowed attributes, each prefixed by its type, in order.
func pick(a attrs, allowed ...uint16) []byte {
	var out []byte
	for _, t := range allowed {
		if v, ok := a.val[t]; ok {
			out = binary.BigEndian.AppendUint16(out, t)
			out = binary.BigEndian.AppendUint32(out, uint32(len(v)))
			out = append(out, v...)
		}
	}
	return out
}

// canonicalExprs renders a nested list of expressions without the state some of them dump
// (counter values, the time of "last").
func canonicalExprs(b []byte) ([]byte, error) {
	exprs, err := list(b)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, e := range exprs {
		c, err := canonicalExpr(e)
		if err != nil {
			return nil, err
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(c)))
		out = append(out, c...)
	}
	return out, nil
}

func canonicalExpr(b []byte) ([]byte, error) {
	a, err := decode(b)
	if err != nil {
		return nil, err
	}
	name := a.str(attrExprName)
	out := append([]byte(name), 0)
	data := a.val[attrExprData]
	switch name {
	case "counter", "last":
		return out, nil
	case "dynset":
		d, err := decode(data)
		if err != nil {
			return nil, err
		}
		var rest []uint16
		for _, t := range d.order {
			if t != attrDynsetExpr && t != attrDynsetExpressions {
				rest = append(rest, t)
			}
		}
		out = append(out, pick(d, rest...)...)
		if e, ok := d.val[attrDynsetExpr]; ok {
			c, err := canonicalExpr(e)
			if err != nil {
				return nil, err
			}
			out = append(out, c...)
		}
		if e, ok := d.val[attrDynsetExpressions]; ok {
			c, err := canonicalExprs(e)
			if err != nil {
				return nil, err
			}
			out = append(out, c...)
		}
		return out, nil
	}
	return append(out, data...), nil
}

// counterPackets reads the packets of a counter expression or object's data.
func counterPackets(data []byte) uint64 {
	a, err := decode(data)
	if err != nil {
		return 0
	}
	if v := a.val[attrCounterPackets]; len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// elementPackets returns the packets of the counter attached to a set element, if any.
func elementPackets(a attrs) uint64 {
	if e, ok := a.val[attrElemExpr]; ok {
		if x, err := decode(e); err == nil && x.str(attrExprName) == "counter" {
			return counterPackets(x.val[attrExprData])
		}
	}
	if es, ok := a.val[attrElemExpressions]; ok {
		exprs, _ := list(es)
		for _, e := range exprs {
			if x, err := decode(e); err == nil && x.str(attrExprName) == "counter" {
				return counterPackets(x.val[attrExprData])
			}
		}
	}
	return 0
}

// generation returns the ruleset's generation ID, which every committed transaction increments.
func generation(c *netlink.Conn) (uint32, error) {
	replies, _, err := request(c, unix.NFT_MSG_GETGEN, 0, unix.AF_UNSPEC, nil)
	if err != nil {
		return 0, fmt.Errorf("get ruleset generation: %w", err)
	}
	for _, r := range replies {
		a, err := decode(r)
		if err != nil {
			return 0, err
		}
		if v := a.val[attrGenID]; len(v) == 4 {
			return binary.BigEndian.Uint32(v), nil
		}
	}
	return 0, errors.New("get ruleset generation: no generation in the reply")
}

// errInconsistent is a read that saw the ruleset change under it.
var errInconsistent = errors.New("the ruleset changed during the read")

// readNetlink reads table inet imdsguard consistently: it retries while the generation changes
// during the dumps.
func readNetlink(c *netlink.Conn) (*State, error) {
	var err error
	for range 10 {
		var st *State
		st, err = readOnce(c)
		if err == nil {
			return st, nil
		}
		if !errors.Is(err, errInconsistent) {
			return nil, err
		}
	}
	return nil, err
}

func readOnce(c *netlink.Conn) (*State, error) {
	gen, err := generation(c)
	if err != nil {
		return nil, err
	}
	table := netlink.Attribute{Type: attrTableName, Data: append([]byte(TableName), 0)}
	tables, _, err := request(c, unix.NFT_MSG_GETTABLE, 0, nfprotoInet, []netlink.Attribute{table})
	if errors.Is(err, unix.ENOENT) {
		if after, err := generation(c); err != nil || after != gen {
			return nil, errInconsistent
		}
		return &State{Generation: gen}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get table: %w", err)
	}
	st := &State{Present: true, Generation: gen, Rules: map[string]int{}, Elements: map[string]int{}, Counters: map[string]uint64{}, Seen: map[netip.Addr]uint64{}}
	var fp fingerprint
	interruptedAny := false
	dump := func(msg int, filter []netlink.Attribute) ([]attrs, error) {
		replies, interrupted, err := request(c, msg, netlink.Dump, nfprotoInet, filter)
		if err != nil {
			return nil, err
		}
		interruptedAny = interruptedAny || interrupted
		out := make([]attrs, 0, len(replies))
		for _, r := range replies {
			a, err := decode(r)
			if err != nil {
				return nil, err
			}
			// Dumps are filtered by table where the kernel supports it; check anyway.
			if a.str(1) == TableName {
				out = append(out, a)
			}
		}
		return out, nil
	}

	for _, r := range tables {
		a, err := decode(r)
		if err != nil {
			return nil, err
		}
		fp.add("table", pick(a, attrTableFlags, attrTableUserdata))
	}

	chains, err := dump(unix.NFT_MSG_GETCHAIN, []netlink.Attribute{{Type: attrChainTable, Data: table.Data}})
	if err != nil {
		return nil, fmt.Errorf("dump chains: %w", err)
	}
	sort.Slice(chains, func(i, j int) bool { return chains[i].str(attrChainName) < chains[j].str(attrChainName) })
	for _, a := range chains {
		st.Rules[a.str(attrChainName)] += 0
		fp.add("chain", pick(a, attrChainName, attrChainHook, attrChainPolicy, attrChainType, attrChainFlags, attrChainUserdata))
	}

	rules, err := dump(unix.NFT_MSG_GETRULE, []netlink.Attribute{{Type: attrRuleTable, Data: table.Data}})
	if err != nil {
		return nil, fmt.Errorf("dump rules: %w", err)
	}
	// The dump lists each chain's rules in order; sort the chains, keep the order within each.
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].str(attrRuleChain) < rules[j].str(attrRuleChain) })
	for _, a := range rules {
		st.Rules[a.str(attrRuleChain)]++
		exprs, err := canonicalExprs(a.val[attrRuleExpressions])
		if err != nil {
			return nil, fmt.Errorf("rule in chain %s: %w", a.str(attrRuleChain), err)
		}
		fp.add("rule", pick(a, attrRuleChain, attrRuleCompat, attrRuleUserdata), exprs)
	}

	sets, err := dump(unix.NFT_MSG_GETSET, []netlink.Attribute{{Type: attrSetTable, Data: table.Data}})
	if err != nil {
		return nil, fmt.Errorf("dump sets: %w", err)
	}
	sort.Slice(sets, func(i, j int) bool { return sets[i].str(attrSetName) < sets[j].str(attrSetName) })
	for _, a := range sets {
		name := a.str(attrSetName)
		var templates []byte
		if e, ok := a.val[attrSetExpr]; ok {
			if templates, err = canonicalExpr(e); err != nil {
				return nil, err
			}
		}
		if e, ok := a.val[attrSetExpressions]; ok {
			if templates, err = canonicalExprs(e); err != nil {
				return nil, err
			}
		}
		fp.add("set", pick(a, attrSetName, attrSetFlags, attrSetKeyType, attrSetKeyLen, attrSetDataType, attrSetDataLen,
			attrSetPolicy, attrSetDesc, attrSetTimeout, attrSetGCInterval, attrSetUserdata, attrSetObjType), templates)

		elems, err := dump(unix.NFT_MSG_GETSETELEM, []netlink.Attribute{
			{Type: attrElemListTable, Data: table.Data},
			{Type: attrElemListSet, Data: append([]byte(name), 0)},
		})
		if err != nil {
			return nil, fmt.Errorf("dump elements of set %s: %w", name, err)
		}
		seen := strings.HasPrefix(name, "seen_")
		var keys []string
		for _, batch := range elems {
			items, err := list(batch.val[attrElemListElements])
			if err != nil {
				return nil, err
			}
			for _, item := range items {
				e, err := decode(item)
				if err != nil {
					return nil, err
				}
				key := elementKey(e.val[attrElemKey])
				if seen {
					if addr, ok := netip.AddrFromSlice(key); ok {
						st.Seen[addr.Unmap()] += elementPackets(e)
					}
					continue
				}
				keys = append(keys, hex.EncodeToString(pick(e, attrElemData, attrElemFlags, attrElemTimeout, attrElemUserdata, attrElemObjref, attrElemKeyEnd))+":"+hex.EncodeToString(key))
			}
		}
		if !seen {
			st.Elements[name] = len(keys)
			slices.Sort(keys)
			fp.add("elements", []byte(name), []byte(strings.Join(keys, ",")))
		}
	}

	objs, err := dump(unix.NFT_MSG_GETOBJ, []netlink.Attribute{{Type: attrObjTable, Data: table.Data}})
	if err != nil {
		return nil, fmt.Errorf("dump objects: %w", err)
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].str(attrObjName) < objs[j].str(attrObjName) })
	for _, a := range objs {
		typ := a.val[attrObjType]
		if len(typ) == 4 && binary.BigEndian.Uint32(typ) == objTypeCounter {
			st.Counters[a.str(attrObjName)] = counterPackets(a.val[attrObjData])
			fp.add("counter", pick(a, attrObjName, attrObjUserdata))
			continue
		}
		fp.add("object", pick(a, attrObjName, attrObjType, attrObjData, attrObjUserdata))
	}

	flowtables, err := dump(unix.NFT_MSG_GETFLOWTABLE, []netlink.Attribute{{Type: attrFlowtableTable, Data: table.Data}})
	if err != nil {
		return nil, fmt.Errorf("dump flowtables: %w", err)
	}
	for _, a := range flowtables {
		fp.add("flowtable", pick(a, attrFlowtableName, attrFlowtableHook, attrFlowtableFlags))
	}

	after, err := generation(c)
	if err != nil {
		return nil, err
	}
	if interruptedAny || after != gen {
		return nil, errInconsistent
	}
	sum := sha256.Sum256(fp.b.Bytes())
	st.Fingerprint = hex.EncodeToString(sum[:])
	return st, nil
}

// elementKey returns the raw value of a set element's key (NFTA_SET_ELEM_KEY holds
// NFTA_DATA_VALUE).
func elementKey(b []byte) []byte {
	a, err := decode(b)
	if err != nil {
		return nil
	}
	return a.val[attrDataVal]
}

// tableEvents tells, for each message of the nf_tables multicast group, whether it changed
// table inet imdsguard, and at the end of each transaction (NFT_MSG_NEWGEN) whether any of its
// messages did. Every object message carries its table's name as attribute 1.
type tableEvents struct{ touched bool }

// feed takes one multicast message and reports whether it closed a transaction that touched
// the table.
func (t *tableEvents) feed(m netlink.Message) bool {
	msg := int(m.Header.Type) & 0xff
	if int(m.Header.Type)>>8 != unix.NFNL_SUBSYS_NFTABLES || len(m.Data) < 4 {
		return false
	}
	switch msg {
	case unix.NFT_MSG_NEWGEN:
		touched := t.touched
		t.touched = false
		return touched
	case unix.NFT_MSG_NEWTABLE, unix.NFT_MSG_DELTABLE, unix.NFT_MSG_NEWCHAIN, unix.NFT_MSG_DELCHAIN,
		unix.NFT_MSG_NEWRULE, unix.NFT_MSG_DELRULE, unix.NFT_MSG_NEWSET, unix.NFT_MSG_DELSET,
		unix.NFT_MSG_NEWSETELEM, unix.NFT_MSG_DELSETELEM, unix.NFT_MSG_NEWOBJ, unix.NFT_MSG_DELOBJ,
		unix.NFT_MSG_NEWFLOWTABLE, unix.NFT_MSG_DELFLOWTABLE:
		if m.Data[0] != nfprotoInet {
			return false
		}
		a, err := decode(m.Data[4:])
		if err != nil || a.str(1) == TableName {
			// A message we cannot decode may be ours: check rather than miss it.
			t.touched = true
		}
	}
	return false
}
