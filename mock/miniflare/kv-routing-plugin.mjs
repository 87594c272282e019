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
// Binding options: { address: "127.0.0.1:PORT", namespace: "NAME" }.
// This relies on Miniflare 4 internals (plugin shape, `kvNamespace`
// bindings, `external` services): package.json pins exact versions.

/** Name of this plugin, as `unsafeBindings[].plugin.name` refers to it. */
export const PLUGIN_NAME = "kvchaos-kv";

/** Header the mock KV reads to choose a namespace. */
export const NAMESPACE_HEADER = "X-KvChaos-Namespace";

function serviceName(binding) {
  return `kvchaos-kv:${binding.name}`;
}

export const plugins = {
  [PLUGIN_NAME]: {
    // Options of external plugins are not schema-validated by miniflare:
    // `launch.mjs` builds them and nothing else does.
    async getBindings(bindings) {
      return (bindings ?? []).map((b) => ({
        name: b.name,
        kvNamespace: { name: serviceName(b) },
      }));
    },
    getNodeBindings() {
      return {};
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
