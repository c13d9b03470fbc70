// Golden vectors for metallb-py's memberlist codec, made with the same Go libraries
// memberlist uses (go-msgpack's MsgpackHandle, compress/lzw, crypto/aes+cipher), and a
// decoder that reads what the Python side produced. memberlist's own encoders are unexported,
// so the wire structs are declared here again with the same field names, types and tags.
package main

import (
	"bufio"
	"bytes"
	"compress/lzw"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/go-msgpack/codec"
)

type vPing struct {
	SeqNo      uint32
	Node       string
	SourceAddr []byte `codec:",omitempty"`
	SourcePort uint16 `codec:",omitempty"`
	SourceNode string `codec:",omitempty"`
}

type vIndirectPing struct {
	SeqNo      uint32
	Target     []byte
	Port       uint16
	Node       string
	Nack       bool
	SourceAddr []byte `codec:",omitempty"`
	SourcePort uint16 `codec:",omitempty"`
	SourceNode string `codec:",omitempty"`
}

type vAck struct {
	SeqNo   uint32
	Payload []byte
}

type vNack struct{ SeqNo uint32 }

type vErr struct{ Error string }

type vSuspect struct {
	Incarnation uint32
	Node        string
	From        string
}

type vAlive struct {
	Incarnation uint32
	Node        string
	Addr        []byte
	Port        uint16
	Meta        []byte
	Vsn         []uint8
}

type vDead struct {
	Incarnation uint32
	Node        string
	From        string
}

type vPushPullHeader struct {
	Nodes        int
	UserStateLen int
	Join         bool
}

type vUserMsgHeader struct{ UserMsgLen int }

type vPushNodeState struct {
	Name        string
	Addr        []byte
	Port        uint16
	Meta        []byte
	Incarnation uint32
	State       int
	Vsn         []uint8
}

type vCompress struct {
	Algo uint8
	Buf  []byte
}

func mpEncode(buf *bytes.Buffer, v interface{}) {
	hd := codec.MsgpackHandle{}
	if err := codec.NewEncoder(buf, &hd).Encode(v); err != nil {
		panic(err)
	}
}

func message(t byte, v interface{}) []byte {
	var buf bytes.Buffer
	buf.WriteByte(t)
	mpEncode(&buf, v)
	return buf.Bytes()
}

func lzwCompress(in []byte) []byte {
	var buf bytes.Buffer
	w := lzw.NewWriter(&buf, lzw.LSB, 8)
	w.Write(in)
	w.Close()
	return buf.Bytes()
}

// lcg makes test input both languages can regenerate: a 31-bit LCG, alphabet of k bytes.
func lcg(n, k int) []byte {
	out := make([]byte, n)
	x := uint32(12345)
	for i := range out {
		x = (x*1103515245 + 12345) & 0x7fffffff
		out[i] = byte('a' + int(x>>16)%k)
	}
	return out
}

func seal(vsn byte, key, nonce, plain, aad []byte) []byte {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	if vsn == 0 {
		pad := 16 - len(plain)%16
		plain = append(append([]byte{}, plain...), bytes.Repeat([]byte{byte(pad)}, pad)...)
	}
	out := append([]byte{vsn}, nonce...)
	return gcm.Seal(out, nonce, plain, aad)
}

func open(key, payload, aad []byte) ([]byte, error) {
	if len(payload) < 29 || payload[0] > 1 {
		return nil, fmt.Errorf("bad payload")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, payload[1:13], payload[13:], aad)
	if err != nil {
		return nil, err
	}
	if payload[0] == 0 {
		plain = plain[:len(plain)-int(plain[len(plain)-1])]
	}
	return plain, nil
}

func h(b []byte) string { return hex.EncodeToString(b) }

func printVectors() {
	v := map[string]interface{}{}

	var lzwVecs []map[string]interface{}
	inputs := map[string][]byte{
		"empty": {},
		"one":   []byte("a"),
		"tobe":  []byte("TOBEORNOTTOBEORTOBEORNOT#"),
		"kwkwk": []byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
		"bytes": func() []byte {
			b := make([]byte, 512)
			for i := range b {
				b[i] = byte(i)
			}
			return b
		}(),
		"lcg4":  lcg(20000, 4),
		"lcg26": lcg(70000, 26),
		"lcg2":  lcg(300000, 2),
	}
	for name, in := range inputs {
		lzwVecs = append(lzwVecs, map[string]interface{}{
			"name": name, "input": h(in), "output": h(lzwCompress(in)),
		})
	}
	v["lzw"] = lzwVecs

	ip := []byte{10, 0, 0, 1}
	vsn := []uint8{1, 5, 2, 0, 0, 0}
	long := strings.Repeat("n", 40)
	msgs := map[string][]byte{
		"ping":          message(0, &vPing{SeqNo: 1, Node: "node-a"}),
		"ping_source":   message(0, &vPing{SeqNo: 70000, Node: "node-a", SourceAddr: ip, SourcePort: 7946, SourceNode: "node-b"}),
		"ping_long":     message(0, &vPing{SeqNo: 4294967295, Node: long}),
		"indirect_ping": message(1, &vIndirectPing{SeqNo: 300, Target: ip, Port: 7946, Node: "node-c", Nack: true, SourceAddr: ip, SourcePort: 7947, SourceNode: "node-b"}),
		"indirect_bare": message(1, &vIndirectPing{SeqNo: 3, Target: ip, Port: 7946, Node: "node-c"}),
		"ack":           message(2, &vAck{SeqNo: 9, Payload: []byte("pong")}),
		"ack_nil":       message(2, &vAck{SeqNo: 9}),
		"nack":          message(11, &vNack{SeqNo: 9}),
		"err":           message(13, &vErr{Error: "boom"}),
		"suspect":       message(3, &vSuspect{Incarnation: 4, Node: "node-a", From: "node-b"}),
		"alive":         message(4, &vAlive{Incarnation: 256, Node: "node-a", Addr: ip, Port: 7946, Meta: []byte("m"), Vsn: vsn}),
		"alive_nometa":  message(4, &vAlive{Incarnation: 1, Node: "node-a", Addr: ip, Port: 7946, Vsn: vsn}),
		"dead":          message(5, &vDead{Incarnation: 65536, Node: "node-a", From: "node-a"}),
	}
	var pp bytes.Buffer
	pp.WriteByte(6)
	mpEncode(&pp, &vPushPullHeader{Nodes: 2, UserStateLen: 3, Join: true})
	mpEncode(&pp, &vPushNodeState{Name: "node-a", Addr: ip, Port: 7946, Incarnation: 1, State: 0, Vsn: vsn})
	mpEncode(&pp, &vPushNodeState{Name: "node-b", Addr: []byte{10, 0, 0, 2}, Port: 7946, Meta: []byte("x"), Incarnation: 7, State: 2, Vsn: vsn})
	pp.WriteString("usr")
	msgs["push_pull"] = pp.Bytes()
	var um bytes.Buffer
	um.WriteByte(8)
	mpEncode(&um, &vUserMsgHeader{UserMsgLen: 5})
	um.WriteString("hello")
	msgs["user_stream"] = um.Bytes()
	msgs["compress_ping"] = message(9, &vCompress{Algo: 0, Buf: lzwCompress(msgs["ping"])})
	// A compound of ping and ack, as makeCompoundMessage lays it out, with a CRC header.
	var comp bytes.Buffer
	comp.Write([]byte{7, 2})
	binary.Write(&comp, binary.BigEndian, uint16(len(msgs["ping"])))
	binary.Write(&comp, binary.BigEndian, uint16(len(msgs["ack"])))
	comp.Write(msgs["ping"])
	comp.Write(msgs["ack"])
	msgs["compound"] = comp.Bytes()
	crc := make([]byte, 5)
	crc[0] = 12
	binary.BigEndian.PutUint32(crc[1:], crc32.ChecksumIEEE(comp.Bytes()))
	msgs["crc_compound"] = append(crc, comp.Bytes()...)
	out := map[string]string{}
	for k, b := range msgs {
		out[k] = h(b)
	}
	v["messages"] = out

	var encs []map[string]interface{}
	nonce := []byte("0123456789ab")
	for _, keyLen := range []int{16, 24, 32} {
		key := bytes.Repeat([]byte{byte(keyLen)}, keyLen)
		for _, vsnByte := range []byte{0, 1} {
			for _, aad := range [][]byte{nil, []byte("label"), {10, 0, 0, 0, 42}} {
				plain := msgs["ping"]
				encs = append(encs, map[string]interface{}{
					"version": vsnByte, "key": h(key), "nonce": h(nonce), "aad": h(aad),
					"plain": h(plain), "out": h(seal(vsnByte, key, nonce, plain, aad)),
				})
			}
		}
	}
	v["encrypted"] = encs

	var keys []map[string]string
	for _, s := range []string{"a", "metallb-secret", strings.Repeat("0123456789", 4)} {
		keys = append(keys, map[string]string{"secret": s, "key": h(secretKey(s))})
	}
	v["keys"] = keys

	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
}

func decodeStruct(kind string, buf []byte) (interface{}, error) {
	types := map[string]struct {
		t byte
		v interface{}
	}{
		"ping": {0, &vPing{}}, "indirect_ping": {1, &vIndirectPing{}}, "ack": {2, &vAck{}},
		"suspect": {3, &vSuspect{}}, "alive": {4, &vAlive{}}, "dead": {5, &vDead{}},
		"nack": {11, &vNack{}}, "err": {13, &vErr{}},
	}
	entry, ok := types[kind]
	if !ok {
		return nil, fmt.Errorf("unknown kind %q", kind)
	}
	if len(buf) == 0 || buf[0] != entry.t {
		return nil, fmt.Errorf("wrong type byte")
	}
	hd := codec.MsgpackHandle{}
	if err := codec.NewDecoder(bytes.NewReader(buf[1:]), &hd).Decode(entry.v); err != nil {
		return nil, err
	}
	return entry.v, nil
}

func decodeStream(kind string, buf []byte) (interface{}, error) {
	r := bytes.NewReader(buf[1:])
	hd := codec.MsgpackHandle{}
	dec := codec.NewDecoder(r, &hd)
	switch kind {
	case "push_pull":
		var head vPushPullHeader
		if err := dec.Decode(&head); err != nil {
			return nil, err
		}
		nodes := make([]vPushNodeState, head.Nodes)
		for i := range nodes {
			if err := dec.Decode(&nodes[i]); err != nil {
				return nil, err
			}
		}
		user := make([]byte, head.UserStateLen)
		if _, err := io.ReadFull(r, user); err != nil {
			return nil, err
		}
		return map[string]interface{}{"header": head, "nodes": nodes, "user": h(user)}, nil
	case "user_stream":
		var head vUserMsgHeader
		if err := dec.Decode(&head); err != nil {
			return nil, err
		}
		user := make([]byte, head.UserMsgLen)
		if _, err := io.ReadFull(r, user); err != nil {
			return nil, err
		}
		return map[string]interface{}{"payload": h(user)}, nil
	case "compress":
		var c vCompress
		if err := dec.Decode(&c); err != nil {
			return nil, err
		}
		if c.Algo != 0 {
			return nil, fmt.Errorf("algo %d", c.Algo)
		}
		return lzwDecode(c.Buf)
	}
	return nil, fmt.Errorf("unknown kind %q", kind)
}

func lzwDecode(in []byte) (interface{}, error) {
	var out bytes.Buffer
	r := lzw.NewReader(bytes.NewReader(in), lzw.LSB, 8)
	defer r.Close()
	if _, err := io.Copy(&out, r); err != nil {
		return nil, err
	}
	return h(out.Bytes()), nil
}

// decodeLines reads "kind hex [key-hex aad-hex]" lines and prints what Go makes of them:
// {"ok":true,"value":...} or {"ok":false,"error":...}, one JSON line per input line.
func decodeLines(in io.Reader) {
	scanner := bufio.NewScanner(in)
	scanner.Buffer(make([]byte, 1<<20), 64<<20)
	enc := json.NewEncoder(os.Stdout)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) < 2 {
			continue
		}
		var value interface{}
		buf, err := hex.DecodeString(fields[1])
		if err == nil {
			switch fields[0] {
			case "lzw":
				value, err = lzwDecode(buf)
			case "push_pull", "user_stream", "compress":
				if len(buf) == 0 {
					err = fmt.Errorf("empty")
				} else {
					value, err = decodeStream(fields[0], buf)
				}
			case "decrypt":
				var key, aad, plain []byte
				key, err = hex.DecodeString(fields[2])
				if err == nil && len(fields) > 3 {
					aad, err = hex.DecodeString(fields[3])
				}
				if err == nil {
					plain, err = open(key, buf, aad)
					value = h(plain)
				}
			default:
				value, err = decodeStruct(fields[0], buf)
			}
		}
		if err != nil {
			enc.Encode(map[string]interface{}{"ok": false, "error": err.Error()})
		} else {
			enc.Encode(map[string]interface{}{"ok": true, "value": value})
		}
	}
}
