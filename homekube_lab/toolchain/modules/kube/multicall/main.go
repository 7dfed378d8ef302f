// Command multicall is the Kubernetes control plane, kubectl, etcd and kwok in one binary.
//
// It runs the command named by the base name of argv[0], so hard links (or symlinks)
// named kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd and kwok
// to this one file behave like the six upstream binaries, while the processes share one
// mapped file (page cache, PSS) and the disk holds it once. `multicall NAME ARGS...` works
// too. The side imports are the ones each upstream main package has.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	_ "time/tzdata" // CronJob time zones (kube-apiserver, kube-controller-manager)

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/etcdmain"
	_ "k8s.io/client-go/plugin/pkg/client/auth" // kubectl's client auth plugins
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"          // --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // the version metric
	kubectl "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kwokconfig "sigs.k8s.io/kwok/pkg/config"
	kwok "sigs.k8s.io/kwok/pkg/kwok/cmd"
	kwoklog "sigs.k8s.io/kwok/pkg/log"
	kwoksignals "sigs.k8s.io/kwok/pkg/utils/signals"
)

var commands = map[string]func(){
	"kube-apiserver":          func() { os.Exit(cli.Run(apiserver.NewAPIServerCommand())) },
	"kube-controller-manager": func() { os.Exit(cli.Run(kcm.NewControllerManagerCommand())) },
	"kube-scheduler":          func() { os.Exit(cli.Run(scheduler.NewSchedulerCommand())) },
	"kubectl":                 runKubectl,
	"etcd":                    func() { etcdmain.Main(os.Args) },
	"kwok":                    runKwok,
}

func runKubectl() {
	// kubectl logs while it builds its command (plugins, kuberc): set -v before that.
	logs.GlogSetter(kubectl.GetLogVerbosity(os.Args)) //nolint:errcheck
	if err := cli.RunNoErrOutput(kubectl.NewDefaultKubectlCommand()); err != nil {
		kubectlutil.CheckErr(err)
	}
}

// runKwok starts kwok as its own main does: kwok's logger and config-file flags live in a
// flag set of their own (unknown flags left to the command), a context cancelled by
// SIGINT/SIGTERM, and any error logged and turned into exit status 1.
func runKwok() {
	// cobra merges pflag.CommandLine into every root command. In this binary the kube
	// packages' init put Kubernetes' --version (component-base verflag, not a bool) there,
	// which breaks cobra's own bool --version that kwok answers; the standalone kwok has
	// nothing in pflag.CommandLine, so kwok gets an empty one here too.
	pflag.CommandLine = pflag.NewFlagSet(os.Args[0], pflag.ExitOnError)
	global := pflag.NewFlagSet("kwok-global", pflag.ContinueOnError)
	global.ParseErrorsAllowlist.UnknownFlags = true
	global.Usage = func() {}
	ctx, logger := kwoklog.InitFlags(kwoksignals.SetupSignalContext(), global)
	ctx, err := kwokconfig.InitFlags(ctx, global)
	if err != nil {
		fmt.Fprint(os.Stderr, global.FlagUsages())
		logger.Error("reading kwok's configuration flags", "err", err)
		os.Exit(1)
	}
	command := kwok.NewCommand(ctx)
	command.PersistentFlags().AddFlagSet(global)
	if err := command.ExecuteContext(ctx); err != nil {
		logger.Error("kwok exited", "err", err)
		os.Exit(1)
	}
}

func main() {
	self := filepath.Base(os.Args[0])
	run, ok := commands[self]
	if !ok && len(os.Args) > 1 {
		// `multicall kubectl get pods`: drop our own name, run the one asked for.
		if run, ok = commands[os.Args[1]]; ok {
			os.Args = os.Args[1:]
		}
	}
	if !ok {
		names := make([]string, 0, len(commands))
		for n := range commands {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: %s COMMAND [ARGS...], or run it through a link named COMMAND; COMMAND is one of %v\n",
			self, names)
		os.Exit(2)
	}
	run()
}
