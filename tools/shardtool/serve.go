package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"certmix/sampler"
	"certmix/sampler/serve"
)

const serveExamples = `  # batches of the paper's mix for two ranks, on loopback TCP, metrics on 127.0.0.1:9477
  shardtool serve --real data/cifar10-train --generated s3://bucket/cifar10-gen-1m --world-size 2 --listen 127.0.0.1:7777

  # on a Unix socket, float32 NCHW normalised with CIFAR-10's mean and LOT's std
  shardtool serve --real data/cifar10-train --generated data/gen-5m --listen unix:/tmp/certmix.sock \
      --float --mean 0.4914,0.4822,0.4465 --std 0.2507,0.2507,0.2507

  # in the training script (clients/python/certmix_client.py):
  #   ds = CertmixDataset("127.0.0.1:7777", rank=rank, state=ckpt.get("sampler"))
`

func runServe(ctx context.Context, args []string) error {
	fs := newFlags("serve", "serve --real URL [--generated URL] [--fraction F] [--batch N] [--listen ADDR] [flags]", serveExamples)
	mix := addMixFlags(fs, false)
	listen := fs.String("listen", "127.0.0.1:7777", "where clients connect: HOST:PORT (TCP) or unix:PATH")
	metricsAddr := fs.String("metrics", "127.0.0.1:9477", "where Prometheus scrapes /metrics (empty: no metrics)")
	remote := fs.Bool("allow-remote", false, "allow listening on addresses other than loopback (the stream has no authentication)")
	float := fs.Bool("float", false, "send float32 NCHW normalised with --mean and --std instead of uint8 NHWC")
	mean := fs.String("mean", "", "per-channel means for --float, comma-separated (default 0)")
	std := fs.String("std", "", "per-channel standard deviations for --float, comma-separated (default 1)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if mix.realURL == "" {
		fs.Usage()
		return errors.New("--real is required")
	}
	if err := mix.check(); err != nil {
		return err
	}
	cfg, _, err := mix.open(ctx, "serve")
	if err != nil {
		return err
	}
	if *float {
		n := &sampler.Normalize{}
		if n.Mean, err = floats(*mean); err != nil {
			return fmt.Errorf("--mean: %w", err)
		}
		if n.Std, err = floats(*std); err != nil {
			return fmt.Errorf("--std: %w", err)
		}
		for _, v := range n.Std {
			if !(v > 0) {
				return fmt.Errorf("--std %s: standard deviations must be positive", *std)
			}
		}
		cfg.Normalize = n
	}
	// Refuse a bad configuration now, not at the first client.
	probe, err := sampler.New(ctx, cfg, nil)
	if err != nil {
		return err
	}
	quotas, stepsPer := probe.Quotas(), probe.StepsPerEpoch()
	probe.Close()

	l, err := listenOn(*listen, *remote)
	if err != nil {
		return err
	}
	srv := serve.New(cfg, serve.Options{Logf: log.Printf})
	if *metricsAddr != "" {
		ml, err := listenOn(*metricsAddr, *remote)
		if err != nil {
			l.Close()
			return fmt.Errorf("--metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", srv.Metrics())
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(ml)
		defer hs.Close()
		log.Printf("metrics on http://%s/metrics", ml.Addr())
	}
	log.Printf("serving %s on %s: %s per batch, %d steps per epoch, %d rank(s)",
		mix.realURL, l.Addr(), describeQuotas(quotas, mix.fraction, mix.batch), stepsPer, mix.world)
	err = srv.Serve(ctx, l)
	if strings.HasPrefix(*listen, "unix:") {
		os.Remove(strings.TrimPrefix(*listen, "unix:"))
	}
	if ctx.Err() != nil {
		log.Printf("stopped")
		return nil
	}
	return err
}

// listenOn listens on HOST:PORT or unix:PATH; TCP only on loopback unless
// remote.
func listenOn(addr string, remote bool) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return net.Listen("unix", path)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("address %q: want HOST:PORT or unix:PATH", addr)
	}
	if ip := net.ParseIP(host); !remote && host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("address %q is not loopback: pass --allow-remote to serve other hosts (there is no authentication)", addr)
	}
	return net.Listen("tcp", addr)
}

// floats parses a comma-separated list of numbers.
func floats(s string) ([]float32, error) {
	if s == "" {
		return nil, nil
	}
	var out []float32
	for _, f := range strings.Split(s, ",") {
		var v float32
		if _, err := fmt.Sscan(strings.TrimSpace(f), &v); err != nil {
			return nil, fmt.Errorf("%q is not a number", f)
		}
		out = append(out, v)
	}
	return out, nil
}
