package main

import (
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/zpagesextension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/pprofextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/filterprocessor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/redactionprocessor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/transformprocessor"
)

// entry is one component of the distribution and the Go module it comes from.
type entry[T component.Factory] struct {
	factory T
	module  string
}

// components lists every component this distribution has: those otel-collector.yaml
// uses, plus `file` (OTLP JSON files, for importing into the viewer) and `debug`
// (print what passes through, when diagnosing a pipeline). A type missing here is
// an error at `validate` and at start-up ("unknown type"), so the real collector,
// not a hand-written list, decides which components the config may name.
func components() (otelcol.Factories, error) {
	var factories otelcol.Factories
	var err error

	factories.Receivers, factories.ReceiverModules, err = register(
		entry[receiver.Factory]{otlpreceiver.NewFactory(), "go.opentelemetry.io/collector/receiver/otlpreceiver"},
	)
	if err != nil {
		return otelcol.Factories{}, err
	}

	factories.Processors, factories.ProcessorModules, err = register(
		entry[processor.Factory]{memorylimiterprocessor.NewFactory(), "go.opentelemetry.io/collector/processor/memorylimiterprocessor"},
		entry[processor.Factory]{batchprocessor.NewFactory(), "go.opentelemetry.io/collector/processor/batchprocessor"},
		entry[processor.Factory]{filterprocessor.NewFactory(), "github.com/open-telemetry/opentelemetry-collector-contrib/processor/filterprocessor"},
		entry[processor.Factory]{redactionprocessor.NewFactory(), "github.com/open-telemetry/opentelemetry-collector-contrib/processor/redactionprocessor"},
		entry[processor.Factory]{transformprocessor.NewFactory(), "github.com/open-telemetry/opentelemetry-collector-contrib/processor/transformprocessor"},
	)
	if err != nil {
		return otelcol.Factories{}, err
	}

	// otlpexporter is the `otlp_grpc` type (its old name `otlp` is kept by the
	// collector as a deprecated alias), otlphttpexporter is `otlp_http`.
	factories.Exporters, factories.ExporterModules, err = register(
		entry[exporter.Factory]{otlpexporter.NewFactory(), "go.opentelemetry.io/collector/exporter/otlpexporter"},
		entry[exporter.Factory]{otlphttpexporter.NewFactory(), "go.opentelemetry.io/collector/exporter/otlphttpexporter"},
		entry[exporter.Factory]{fileexporter.NewFactory(), "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter"},
		entry[exporter.Factory]{debugexporter.NewFactory(), "go.opentelemetry.io/collector/exporter/debugexporter"},
	)
	if err != nil {
		return otelcol.Factories{}, err
	}

	factories.Extensions, factories.ExtensionModules, err = register(
		entry[extension.Factory]{healthcheckextension.NewFactory(), "github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension"},
		entry[extension.Factory]{pprofextension.NewFactory(), "github.com/open-telemetry/opentelemetry-collector-contrib/extension/pprofextension"},
		entry[extension.Factory]{zpagesextension.NewFactory(), "go.opentelemetry.io/collector/extension/zpagesextension"},
	)
	if err != nil {
		return otelcol.Factories{}, err
	}

	// The collector's own logs and metrics (service.telemetry in the config).
	factories.Telemetry = otelconftelemetry.NewFactory()
	return factories, nil
}

// register builds the factory map of one kind of component, and the module of each
// type, deprecated aliases included (otelcol.MakeFactoryMap adds those to the map).
func register[T component.Factory](entries ...entry[T]) (map[component.Type]T, map[component.Type]string, error) {
	list := make([]T, 0, len(entries))
	modules := make(map[component.Type]string, len(entries))
	for _, e := range entries {
		list = append(list, e.factory)
		modules[e.factory.Type()] = moduleRef(e.module)
	}
	factories, err := otelcol.MakeFactoryMap(list...)
	if err != nil {
		return nil, nil, err
	}
	for componentType, factory := range factories {
		modules[componentType] = modules[factory.Type()]
	}
	return factories, modules, nil
}
