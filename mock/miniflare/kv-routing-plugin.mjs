// A Miniflare plugin, loaded through `unsafeBindings`, that binds KV
// namespaces to an external HTTP server (kvchaos's mock KV) instead of
// miniflare's own local KV.
//
// The Worker keeps workerd's own KV class, so every `get`/`put`/`list`/...
// reaches the server in the exact workerd KV wire protocol. Each binding
// gets its own external service whose requests carry the header
// `X-KvChaos-Namespace: <namespace>`, which is how the mock tells the
// bindings apart.
//
// With `mode: "wrapped"` a binding is instead a `wrapped` binding: the JS
// module `kv-wrapper.worker.mjs` (an internal extension module) implements
// the KV API over a service binding to the same external service, and
// throws daily-limit refusals with the exact production text.
//
// Binding options: { address: "127.0.0.1:PORT", namespace: "NAME",
// mode?: "workerd" | "wrapped" }.
// This relies on Miniflare 4 internals (plugin shape, `kvNamespace`
// bindings, `external` services): package.json pins exact versions.

import { readFileSync } from "node:fs";

/** Name of this plugin, as `unsafeBindings[].plugin.name` refers to it. */
export const PLUGIN_NAME = "kvchaos-kv";

/** Header the mock KV reads to choose a namespace. */
export const NAMESPACE_HEADER = "X-KvChaos-Namespace";

/** Internal module name of the JS KV wrapper. */
const WRAPPER_MODULE = "kvchaos-kv:wrapper";
const WRAPPER_SOURCE = new URL("./kv-wrapper.worker.mjs", import.meta.url);

function serviceName(binding) {
  return `kvchaos-kv:${binding.name}`;
}

function binding(b) {
  const service = { name: serviceName(b) };
  if (b.options.mode === "wrapped") {
    return {
      name: b.name,
      wrapped: { moduleName: WRAPPER_MODULE, innerBindings: [{ name: "fetcher", service }] },
    };
  }
  return { name: b.name, kvNamespace: service };
}

export const plugins = {
  [PLUGIN_NAME]: {
    // Options of external plugins are not schema-validated by miniflare:
    // `launch.mjs` builds them and nothing else does.
    async getBindings(bindings) {
      return (bindings ?? []).map(binding);
    },
    getNodeBindings() {
      return {};
    },
    // Called once with every Worker's bindings of this plugin.
    getExtensions({ options }) {
      const wrapped = (options ?? []).flat().some((b) => b?.options?.mode === "wrapped");
      if (!wrapped) return [];
      return [
        {
          modules: [
            {
              name: WRAPPER_MODULE,
              esModule: `${readFileSync(WRAPPER_SOURCE, "utf8")}\n//# sourceURL=${WRAPPER_SOURCE}`,
              internal: true,
            },
          ],
        },
      ];
    },
    async getServices({ options }) {
      return (options ?? []).map((b) => ({
        name: serviceName(b),
        external: {
          address: b.options.address,
          http: {
            injectRequestHeaders: [{ name: NAMESPACE_HEADER, value: b.options.namespace }],
          },
        },
      }));
    },
  },
};
