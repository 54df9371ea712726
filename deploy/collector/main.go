// Command otelcol-cvtrace is cvtrace's OpenTelemetry Collector distribution: the
// collector's own command line (`otelcol-cvtrace --config=FILE`, `validate`,
// `components`), built with only the components that otel-collector.yaml uses
// (components.go). Versions are pinned in go.mod and go.sum, nowhere else: the
// version this binary reports, and the module each component came from, are read
// back from the build information that the go command writes into the binary.
//
// Build it with deploy/build.sh (or `make collector`), not by hand: the script
// caches the binary and rebuilds it only when a pin changes.
package main

import (
	"os"
	"runtime/debug"
	"strings"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"
)

// The module whose version names the release, as in the contrib image's tag
// (otel/opentelemetry-collector-contrib:0.161.0 is built on otelcol v0.161.0).
const releaseModule = "go.opentelemetry.io/collector/otelcol"

func main() {
	// Where a configuration may come from: a file (--config=FILE), the environment
	// (--config=env:NAME, and the ${env:NAME} expansions inside a file) and inline
	// YAML (--set, --config=yaml:...). No http(s) provider: the config is a file in
	// the repository, and a collector that fetches its config over the network is a
	// feature ops did not ask for.
	providers := []confmap.ProviderFactory{
		envprovider.NewFactory(),
		fileprovider.NewFactory(),
		yamlprovider.NewFactory(),
	}
	providerModules := map[string]string{}
	for _, provider := range []struct {
		factory confmap.ProviderFactory
		module  string
	}{
		{providers[0], "go.opentelemetry.io/collector/confmap/provider/envprovider"},
		{providers[1], "go.opentelemetry.io/collector/confmap/provider/fileprovider"},
		{providers[2], "go.opentelemetry.io/collector/confmap/provider/yamlprovider"},
	} {
		scheme := provider.factory.Create(confmap.ProviderSettings{}).Scheme()
		providerModules[scheme] = moduleRef(provider.module)
	}

	settings := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "otelcol-cvtrace",
			Description: "cvtrace's OpenTelemetry Collector distribution",
			Version:     strings.TrimPrefix(moduleVersion(releaseModule), "v"),
		},
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{ProviderFactories: providers},
		},
		ProviderModules: providerModules,
	}
	// cobra has already printed the error; printing it again would only repeat it.
	if err := otelcol.NewCommand(settings).Execute(); err != nil {
		os.Exit(1)
	}
}

// moduleVersion returns the version go.mod selected for a module linked into this
// binary, or "unknown" if the binary carries no build information for it.
func moduleVersion(path string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == path {
			return dep.Version
		}
	}
	return "unknown"
}

// moduleRef is how the collector's `components` command names a component's
// module: "path version", as the OpenTelemetry Collector Builder writes it.
func moduleRef(path string) string {
	return path + " " + moduleVersion(path)
}
