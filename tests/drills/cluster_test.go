package drills_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/libs/devstack/natsserver"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/auth"
	"github.com/parley-chat/parley/services/chat"
	"github.com/parley-chat/parley/services/gateway"
	"github.com/parley-chat/parley/services/inference"
	"github.com/parley-chat/parley/tests/internal/e2e"
)

// freePorts returns n TCP ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
	}
	return ports
}

// startCluster starts a 3-node NATS cluster with JetStream and returns its nodes and
// the client URL list (every node, as a service would be given it).
func startCluster(t *testing.T) ([]*server.Server, string) {
	t.Helper()
	routePorts := freePorts(t, 3)
	var routes []string
	for _, p := range routePorts {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	nodes := make([]*server.Server, 3)
	errs := make(chan error, 3)
	for i := range nodes {
		go func() {
			srv, err := natsserver.Start(natsserver.Options{
				StoreDir: t.TempDir(),
				Cluster: &natsserver.Cluster{
					Name: "parley", ServerName: fmt.Sprintf("nats-%d", i), Port: routePorts[i], Routes: routes,
				},
			})
			nodes[i] = srv
			errs <- err
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatalf("start cluster node: %v", err)
		}
	}
	var urls []string
	for _, n := range nodes {
		t.Cleanup(func() { n.Shutdown(); n.WaitForShutdown() })
		urls = append(urls, n.ClientURL())
	}
	return nodes, strings.Join(urls, ",")
}

// TestClusterReplicas runs the product on a 3-node NATS cluster with
// NATS_STREAM_REPLICAS=3, as deploy/docker-compose.cluster.yml does: every stream and
// bucket the services create has three copies, and chatting goes on after the node
// leading the streams is shut down.
func TestClusterReplicas(t *testing.T) {
	nodes, urls := startCluster(t)
	const replicas = 3
	s := e2e.New(t, e2e.Options{
		NATSURL:   urls,
		Auth:      func(c *auth.Config) { c.StreamReplicas = replicas },
		Chat:      func(c *chat.Config) { c.StreamReplicas = replicas },
		Inference: func(_ int, c *inference.Config) { c.StreamReplicas = replicas },
		Gateway:   func(_ int, c *gateway.Config) { c.StreamReplicas = replicas },
	})
	u := s.User("cluster_cleo")
	c := u.CreateChat("on a cluster")
	first := u.Send(c.ID, "hello, cluster")
	if a := e2e.Collect(t, u.Stream(first.AssistantMessage.ID)); a.Final.Status != events.StatusComplete {
		t.Fatalf("first answer: %+v", a.Final)
	}

	nc, err := nats.Connect(urls)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leader := ""
	for _, name := range []string{events.StreamChatEvents, events.StreamGenerations, "KV_" + events.BucketRevokedSessions} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		info := st.CachedInfo()
		if info.Config.Replicas != replicas || info.Cluster == nil || len(info.Cluster.Replicas) != replicas-1 {
			t.Errorf("stream %s: config replicas %d, cluster %+v; want %d copies", name, info.Config.Replicas, info.Cluster, replicas)
		}
		if name == events.StreamChatEvents && info.Cluster != nil {
			leader = info.Cluster.Leader
		}
	}
	nc.Close()

	// Shut down the node leading CHAT_EVENTS; the others elect a new leader and every
	// service reconnects to a remaining node.
	var stopped bool
	for _, n := range nodes {
		if n.Name() == leader {
			n.Shutdown()
			n.WaitForShutdown()
			stopped = true
		}
	}
	if !stopped {
		t.Fatalf("no node named %q leads %s", leader, events.StreamChatEvents)
	}
	// A send may time out while the cluster elects; one that was stored anyway makes the
	// next try answer 409 generation_in_progress, and its answer is the chat's last message.
	answerID := ""
	e2e.Eventually(t, 60*time.Second, "a message accepted after the leader node stopped", func() error {
		res, err := u.Do("POST", "/api/chats/"+c.ID+"/messages", map[string]string{"content": "still there?"})
		if err != nil {
			return err
		}
		switch {
		case res.Status == http.StatusAccepted:
			var sent events.SendMessageReply
			e2e.MustJSON(t, string(res.Body), &sent)
			answerID = sent.AssistantMessage.ID
		case res.Code() == events.CodeGenerationInProgress:
			msgs := u.Messages(c.ID)
			answerID = msgs[len(msgs)-1].ID
		default:
			return fmt.Errorf("send: %d %s", res.Status, res.Body)
		}
		return nil
	})
	if a := e2e.Collect(t, u.Stream(answerID)); a.Final.Status != events.StatusComplete || a.Text == "" {
		t.Fatalf("answer after the leader stopped: %+v", a.Final)
	}
}
