package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/emulate"
	_ "github.com/powermeter/powermeter/internal/meter/all" // every family registers its emulator
	mqttmeter "github.com/powermeter/powermeter/internal/meter/mqtt"
	"github.com/powermeter/powermeter/internal/mqttc"
)

func init() {
	Register(&Command{
		Name:    "emulate",
		Summary: "serve an emulated device (FRITZ!Box, Shelly, Tasmota, AhoyDTU, OpenDTU) on 127.0.0.1",
		Usage: `powermeter emulate KIND [--listen 127.0.0.1:PORT] [--user U --password P] [--profile P] [--timezone ZONE]
                    [--mqtt mqtt://127.0.0.1:1883 [--topic T] [--every 10s]]

Serves the device's real protocol until Ctrl-C, for tests, demos and anyone
without the hardware. KIND is one of: ` + strings.Join(emulate.Kinds(), ", ") + `.
Faults are switched at runtime:
  curl -X POST 'http://ADDR/_emulator/fault?mode=offline'   (offline, slow, html,
  truncated, 401, 403, 500, inval, counter-reset, stale; mode= clears)
With --mqtt the emulator also publishes like the device does over MQTT
(tasmota: tele/T/SENSOR and LWT; shelly-gen2: T/status/<component>,
T/events/rpc and T/online; opendtu: T/<serial>/…; ahoydtu: T/<name>/…),
every --every, for meters of type = "mqtt".`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("listen", "127.0.0.1:0", "`address` to listen on (port 0 picks a free one)")
			fs.String("user", "", "user `name` the device demands")
			fs.String("password", "", "`password` the device demands (empty: no auth)")
			fs.String("profile", "", "load `profile` and device options (see the family's docs)")
			fs.String("timezone", "Europe/Berlin", "the device's local time `zone`")
			fs.String("mqtt", "", "also publish over MQTT to this `broker` (mqtt://host:1883)")
			fs.String("topic", "", "the device's MQTT `topic` (default: the device's own default)")
			fs.Duration("every", 10*time.Second, "publish every `interval` (Tasmota's TelePeriod)")
		},
		Run:         runEmulate,
		LongRunning: true,
	})
}

func runEmulate(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	args, err := positional(env, fs)
	if errors.Is(err, errHelpShown) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return Usagef("want one emulator kind (one of: %s)", strings.Join(emulate.Kinds(), ", "))
	}
	zone, err := time.LoadLocation(flagString(fs, "timezone"))
	if err != nil {
		return Usagef("--timezone %q: not an IANA zone name", flagString(fs, "timezone"))
	}
	o := emulate.Options{
		Username: flagString(fs, "user"),
		Password: flagString(fs, "password"),
		Profile:  flagString(fs, "profile"),
		Zone:     zone,
	}
	mq := mqttPublish{broker: flagString(fs, "mqtt"), topic: flagString(fs, "topic"), every: flagDuration(fs, "every")}
	if mq.broker != "" {
		if _, ok := mqttmeter.PublishKinds[args[0]]; !ok {
			return Usagef("--mqtt: %s cannot publish over MQTT (these can: tasmota, shelly-gen2, opendtu, ahoydtu)", args[0])
		}
		if _, _, err := mqttc.ParseURL(mq.broker); err != nil {
			return Usagef("--mqtt: %v", err)
		}
		if mq.every < time.Second {
			return Usagef("--every %v: at least 1s", mq.every)
		}
	}
	return serveEmulatorWith(ctx, env, args[0], flagString(fs, "listen"), o, nil, mq)
}

// mqttPublish is what --mqtt, --topic and --every ask for.
type mqttPublish struct {
	broker, topic string
	every         time.Duration
}

// serveEmulator runs the emulator until ctx ends; ready (if set) gets its URL.
func serveEmulator(ctx context.Context, env *Env, kind, listen string, o emulate.Options, ready func(url string)) error {
	return serveEmulatorWith(ctx, env, kind, listen, o, ready, mqttPublish{})
}

// publishMQTT publishes em's values like the device until ctx ends.
func publishMQTT(ctx context.Context, env *Env, kind string, em http.Handler, mq mqttPublish) error {
	topic := mq.topic
	if topic == "" {
		topic = mqttmeter.PublishKinds[kind]
	}
	p := &mqttmeter.Publisher{Kind: kind, Topic: topic, Device: em}
	c, err := mqttc.New(mqttc.Options{URL: mq.broker, ClientID: mqttc.RandomID("emulated-" + kind + "-"), Will: mqttmeter.Will(kind, topic), Log: env.Log,
		OnConnect: func(*mqttc.Client) {
			octx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if err := p.Online(octx); err != nil {
				env.Log.Warn("emulator: publishing online", "err", err)
			}
		}})
	if err != nil {
		return err
	}
	p.Client = c
	fmt.Fprintf(env.Stdout, "%s emulator publishing to %s, topic %s, every %v\n", kind, c.Broker(), topic, mq.every)
	err = p.Run(ctx, mq.every)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = c.Close(cctx, mqttmeter.Will(kind, topic))
	return err
}

// serveEmulatorWith runs the emulator (and its MQTT publisher) until ctx
// ends; ready (if set) gets its URL.
func serveEmulatorWith(ctx context.Context, env *Env, kind, listen string, o emulate.Options, ready func(url string), mq mqttPublish) error {
	known := false
	for _, k := range emulate.Kinds() {
		known = known || k == kind
	}
	if !known {
		return Usagef("unknown emulator %q (known: %s)", kind, strings.Join(emulate.Kinds(), ", "))
	}
	em, err := emulate.New(kind, o)
	if err != nil {
		return Usagef("%v", err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	srv := &http.Server{Handler: em, ReadHeaderTimeout: 10 * time.Second}
	url := "http://" + ln.Addr().String()
	fmt.Fprintf(env.Stdout, "%s emulator listening on %s\n", kind, url)
	env.Log.Info("emulator started", "kind", kind, "url", url, "auth", o.Password != "", "profile", o.Profile)
	if ready != nil {
		ready(url)
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if mq.broker != "" {
		pctx, stopPub := context.WithCancel(ctx)
		defer stopPub()
		go func() {
			if err := publishMQTT(pctx, env, kind, em, mq); err != nil {
				errc <- err
			}
		}()
	}
	select {
	case err := <-errc:
		return fmt.Errorf("emulator %s: %w", kind, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// a request held by the slow fault: cut it off
		if cerr := srv.Close(); cerr != nil && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("stopping the emulator: %w", cerr)
		}
	}
	env.Log.Info("emulator stopped", "kind", kind)
	return nil
}
