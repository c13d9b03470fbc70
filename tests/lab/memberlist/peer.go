// Command peer runs one hashicorp/memberlist member for metallb-py's interop tests.
//
// It prints one JSON object per line on stdout for every membership event and answers
// commands read from stdin (members, join ADDR:PORT, leave, quit). With -vectors or -decode
// it instead works as the golden-vector tool in vectors.go.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

var outMu sync.Mutex

// emit writes one JSON line; stdout is shared by the event and command goroutines.
func emit(v map[string]interface{}) {
	line, err := json.Marshal(v)
	if err != nil {
		line = []byte(fmt.Sprintf(`{"event":"error","error":%q}`, err.Error()))
	}
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.Write(append(line, '\n'))
}

var stateNames = map[memberlist.NodeStateType]string{
	memberlist.StateAlive:   "alive",
	memberlist.StateSuspect: "suspect",
	memberlist.StateDead:    "dead",
}

func stateName(s memberlist.NodeStateType) string {
	if name, ok := stateNames[s]; ok {
		return name
	}
	return fmt.Sprintf("state-%d", s)
}

func nodeJSON(n *memberlist.Node) map[string]interface{} {
	return map[string]interface{}{
		"name":  n.Name,
		"addr":  n.Addr.String(),
		"port":  n.Port,
		"state": stateName(n.State),
		"meta":  string(n.Meta),
		"vsn":   []int{int(n.PMin), int(n.PMax), int(n.PCur), int(n.DMin), int(n.DMax), int(n.DCur)},
	}
}

type events struct{}

func (events) notify(kind string, n *memberlist.Node) {
	v := nodeJSON(n)
	v["event"] = kind
	emit(v)
}

func (e events) NotifyJoin(n *memberlist.Node)   { e.notify("join", n) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.notify("leave", n) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.notify("update", n) }

// secretKey derives the key the way MetalLB's speaker does: sha256.New().Sum(secret)[:32],
// i.e. the secret padded with the digest of nothing, cut to 32 bytes.
func secretKey(secret string) []byte {
	if secret == "" {
		return nil
	}
	return sha256.New().Sum([]byte(secret))[:32]
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func main() {
	name := flag.String("name", "", "member name (default: hostname)")
	bind := flag.String("bind", "127.0.0.1", "address to bind and advertise")
	port := flag.Int("port", 0, "UDP and TCP port (0: pick a free one)")
	secret := flag.String("secret", "", "MetalLB memberlist secret (empty: no encryption)")
	profile := flag.String("profile", "local", "timing profile: lan or local")
	join := flag.String("join", "", "comma-separated ip:port list to join at start")
	verify := flag.Bool("gossip-verify", true, "refuse unencrypted input when a secret is set")
	compress := flag.Bool("compress", true, "compress outgoing messages (memberlist's default)")
	protocol := flag.Int("protocol", -1, "memberlist protocol version to speak (-1: default)")
	verbose := flag.Bool("v", false, "memberlist's log on stderr")
	vectors := flag.Bool("vectors", false, "print golden vectors as JSON and exit")
	decodeMode := flag.Bool("decode", false, "decode 'kind hex' lines from stdin, print JSON")
	flag.Parse()

	if *vectors {
		printVectors()
		return
	}
	if *decodeMode {
		decodeLines(os.Stdin)
		return
	}

	var cfg *memberlist.Config
	switch *profile {
	case "lan":
		cfg = memberlist.DefaultLANConfig()
	case "local":
		cfg = memberlist.DefaultLocalConfig()
	default:
		fmt.Fprintf(os.Stderr, "unknown profile %q\n", *profile)
		os.Exit(2)
	}
	if *name != "" {
		cfg.Name = *name
	}
	cfg.BindAddr = *bind
	cfg.AdvertiseAddr = *bind
	cfg.BindPort = *port
	cfg.AdvertisePort = *port
	cfg.Events = events{}
	cfg.EnableCompression = *compress
	if *protocol >= 0 {
		cfg.ProtocolVersion = uint8(*protocol)
	}
	if key := secretKey(*secret); key != nil {
		cfg.SecretKey = key
		cfg.GossipVerifyIncoming = *verify
		cfg.GossipVerifyOutgoing = true
	}
	if *verbose {
		cfg.LogOutput = os.Stderr
	} else {
		cfg.LogOutput = io.Discard
	}

	list, err := memberlist.Create(cfg)
	if err != nil {
		emit(map[string]interface{}{"event": "error", "error": err.Error()})
		os.Exit(1)
	}
	local := list.LocalNode()
	emit(map[string]interface{}{
		"event": "ready", "name": local.Name, "addr": local.Addr.String(), "port": local.Port,
		"protocol": list.ProtocolVersion(),
	})
	if peers := splitList(*join); len(peers) > 0 {
		doJoin(list, peers)
	}

	scanner := bufio.NewScanner(os.Stdin)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "members":
			var nodes []map[string]interface{}
			for _, n := range list.Members() {
				nodes = append(nodes, nodeJSON(n))
			}
			emit(map[string]interface{}{"event": "members", "members": nodes})
		case "join":
			doJoin(list, fields[1:])
		case "leave":
			err := list.Leave(5 * time.Second)
			v := map[string]interface{}{"event": "left"}
			if err != nil {
				v["error"] = err.Error()
			}
			emit(v)
		case "quit":
			list.Shutdown()
			emit(map[string]interface{}{"event": "quit"})
			return
		default:
			emit(map[string]interface{}{"event": "error", "error": "unknown command " + fields[0]})
		}
	}
	list.Shutdown()
}

func doJoin(list *memberlist.Memberlist, peers []string) {
	for _, p := range peers {
		if _, _, err := net.SplitHostPort(p); err != nil {
			emit(map[string]interface{}{"event": "joined", "error": err.Error()})
			return
		}
	}
	n, err := list.Join(peers)
	v := map[string]interface{}{"event": "joined", "contacted": n}
	if err != nil {
		v["error"] = err.Error()
	}
	emit(v)
}
