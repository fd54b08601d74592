// The shape of a provisioned dashboard file, built from Grafana's published types (@grafana/schema):
// the dashboard, its rows, variables and annotations, and for every panel type the boards use, that
// panel's own options and custom field config. A generated board assigned to `Board` as an object
// literal fails the type check on any key the schema does not know (TypeScript's excess property
// check, at every depth) and on any value of the wrong type.
import type * as grafana from "@grafana/schema";
import type * as barchart from "@grafana/schema/dist/esm/raw/composable/barchart/panelcfg/x/BarChartPanelCfg_types.gen";
import type * as bargauge from "@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen";
import type * as gauge from "@grafana/schema/dist/esm/raw/composable/gauge/panelcfg/x/GaugePanelCfg_types.gen";
import type * as heatmap from "@grafana/schema/dist/esm/raw/composable/heatmap/panelcfg/x/HeatmapPanelCfg_types.gen";
import type * as histogram from "@grafana/schema/dist/esm/raw/composable/histogram/panelcfg/x/HistogramPanelCfg_types.gen";
import type * as logs from "@grafana/schema/dist/esm/raw/composable/logs/panelcfg/x/LogsPanelCfg_types.gen";
import type * as piechart from "@grafana/schema/dist/esm/raw/composable/piechart/panelcfg/x/PieChartPanelCfg_types.gen";
import type * as stat from "@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen";
import type * as statetimeline from "@grafana/schema/dist/esm/raw/composable/statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen";
import type * as statushistory from "@grafana/schema/dist/esm/raw/composable/statushistory/panelcfg/x/StatusHistoryPanelCfg_types.gen";
import type * as table from "@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen";
import type * as text from "@grafana/schema/dist/esm/raw/composable/text/panelcfg/x/TextPanelCfg_types.gen";
import type * as timeseries from "@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen";

/** A type as JSON spells it: the schema's string enums become their string values. */
type Json<T> = T extends string ? `${T}`
  : T extends readonly (infer U)[] ? Json<U>[]
  : T extends object ? { [K in keyof T]: Json<T[K]> }
  : T;

/** Panel options and custom field config as JSON spells them, every key optional: Grafana fills in
 * the panel plugin's defaults for what a board leaves out, so only unknown keys and wrong values fail. */
type Defaulted<T> = T extends string ? `${T}`
  : T extends readonly (infer U)[] ? Defaulted<U>[]
  : T extends object ? { [K in keyof T]?: Defaulted<T[K]> }
  : T;

type StandardFieldConfig = Omit<grafana.FieldConfig, "custom">;

/** What an override may set: a standard field config key or `custom.<key>` of the panel type, each
 * with that key's value type. */
type OverrideProperty<Custom> =
  | { [K in keyof StandardFieldConfig]-?: { id: K; value?: StandardFieldConfig[K] } }[keyof StandardFieldConfig]
  | { [K in Extract<keyof Custom, string>]-?: { id: `custom.${K}`; value?: Custom[K] } }[Extract<keyof Custom, string>];

type FieldConfigSource<Custom> = {
  defaults: StandardFieldConfig & { custom?: Custom };
  overrides: Array<{ matcher: grafana.MatcherConfig; properties: Array<OverrideProperty<Custom>> }>;
};

/** A panel of plugin `Type`; `never` as `Custom` for panel types that have no custom field config. */
type PanelOf<Type extends string, Options, Custom = never> =
  Omit<grafana.Panel, "type" | "options" | "fieldConfig"> & {
    type: Type;
    options?: Defaulted<Options>;
    fieldConfig?: FieldConfigSource<Defaulted<Custom>>;
  };

/** Every panel type the boards may use, by its plugin id; a panel of any other type fails the check. */
type Panel =
  | PanelOf<"barchart", barchart.Options, barchart.FieldConfig>
  | PanelOf<"bargauge", bargauge.Options>
  | PanelOf<"gauge", gauge.Options>
  | PanelOf<"heatmap", heatmap.Options, heatmap.FieldConfig>
  | PanelOf<"histogram", histogram.Options, histogram.FieldConfig>
  | PanelOf<"logs", logs.Options>
  | PanelOf<"piechart", piechart.Options, piechart.FieldConfig>
  | PanelOf<"stat", stat.Options>
  | PanelOf<"state-timeline", statetimeline.Options, statetimeline.FieldConfig>
  | PanelOf<"status-history", statushistory.Options, statushistory.FieldConfig>
  | PanelOf<"table", table.Options, table.FieldConfig>
  | PanelOf<"text", text.Options>
  | PanelOf<"timeseries", timeseries.Options, timeseries.FieldConfig>;

type Row = Omit<grafana.RowPanel, "panels"> & { panels: Panel[] };

// Keys Grafana reads that its schema leaves out, each allowed for a reason:
/** Prometheus annotations keep their query at the top level: the classic form, which Grafana's
 * Prometheus datasource still reads (it moves these keys into `target` when the board loads). */
type PrometheusAnnotation = {
  expr?: string; step?: string; titleFormat?: string; textFormat?: string; tagKeys?: string; useValueForTime?: boolean;
};
/** Query variables carry `definition`, the query as text, which Grafana writes on save and shows in
 * the variables list. */
type QueryVariable = { definition?: string };

export type Board = Json<Omit<grafana.Dashboard, "panels" | "annotations" | "templating"> & {
  panels: Array<Panel | Row>;
  annotations?: { list?: Array<grafana.AnnotationQuery & PrometheusAnnotation> };
  templating?: { list?: Array<grafana.VariableModel & QueryVariable> };
}>;
