// Starts one real Elasticsearch node (the server + its netty4 HTTP module, no x-pack) in this JVM,
// bound to loopback, for kubesigma's tests and local trials. Built and run by .ci/es/es.sh.
//
// Why this package: Elastic publishes the server jar and the transport-netty4 module to Maven Central,
// but not a runnable distribution. A Node with classpath plugins is built the way Elastic's own
// MockNode does it (NodeConstruction with a plugin service that loads classes from the classpath),
// which is package-private; MockNode itself cannot be used because it initialises ESTestCase, whose
// test bootstrap refuses to run as root. Nothing else is mocked: every node service is the real one.

package org.elasticsearch.node;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.function.Predicate;
import java.util.function.Supplier;

import org.elasticsearch.Build;
import org.elasticsearch.action.admin.cluster.state.ClusterStateRequest;
import org.elasticsearch.action.admin.cluster.state.ClusterStateResponse;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.index.IndexVersion;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.rest.action.RestBuilderListener;
import org.elasticsearch.xcontent.XContentBuilder;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.MockPluginsService;
import org.elasticsearch.plugins.PluginsService;
import org.elasticsearch.transport.netty4.Netty4Plugin;

public class KubesigmaEsLauncher {

    /** Loads the netty4 module from the classpath instead of a modules/ directory. */
    static final class ClasspathPlugins extends NodeServiceProvider {
        @Override
        PluginsService newPluginService(Environment environment, Settings settings) {
            return new MockPluginsService(settings, environment, List.of(Netty4Plugin.class, RootEndpoint.class));
        }
    }

    /**
     * `GET /` and `HEAD /` (cluster name, uuid and version), which clients use to ping and to learn the
     * server's version. In 8.x they live in the rest-root module, which Elastic does not publish to
     * Maven Central, so this registers the same response for the same routes.
     */
    public static final class RootEndpoint extends Plugin implements ActionPlugin {
        @Override
        public Collection<RestHandler> getRestHandlers(Settings settings, NamedWriteableRegistry registry,
                RestController controller, ClusterSettings clusterSettings, IndexScopedSettings indexSettings,
                SettingsFilter filter, IndexNameExpressionResolver resolver, Supplier<DiscoveryNodes> nodes,
                Predicate<NodeFeature> features) {
            return List.of(new RootHandler(settings));
        }
    }

    static final class RootHandler extends BaseRestHandler {
        private final Settings settings;

        RootHandler(Settings settings) {
            this.settings = settings;
        }

        @Override
        public String getName() {
            return "kubesigma_root_action";
        }

        @Override
        public List<Route> routes() {
            return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
        }

        @Override
        protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
            ClusterStateRequest state = new ClusterStateRequest().clear().metadata(true);
            return channel -> client.admin().cluster().state(state, new RestBuilderListener<ClusterStateResponse>(channel) {
                @Override
                public RestResponse buildResponse(ClusterStateResponse response, XContentBuilder b) throws Exception {
                    Build build = Build.current();
                    b.startObject();
                    b.field("name", settings.get("node.name"));
                    b.field("cluster_name", response.getClusterName().value());
                    b.field("cluster_uuid", response.getState().metadata().clusterUUID());
                    b.startObject("version");
                    b.field("number", build.qualifiedVersion());
                    b.field("build_flavor", build.flavor());
                    b.field("build_type", build.type().displayName());
                    b.field("build_hash", build.hash());
                    b.field("build_date", build.date());
                    b.field("build_snapshot", build.isSnapshot());
                    b.field("lucene_version", IndexVersion.current().luceneVersion().toString());
                    b.field("minimum_wire_compatibility_version", build.minWireCompatVersion());
                    b.field("minimum_index_compatibility_version", build.minIndexCompatVersion());
                    b.endObject();
                    b.field("tagline", "You Know, for Search");
                    b.endObject();
                    return new RestResponse(RestStatus.OK, b);
                }
            });
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: KubesigmaEsLauncher <home> <host> <http-port>");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        String host = args[1];
        int httpPort = Integer.parseInt(args[2]);
        Files.createDirectories(home.resolve("config"));
        Settings settings = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "kubesigma-test")
            .put("node.name", "kubesigma-es-1")
            .put("network.host", host)
            .put("http.port", httpPort)
            .put("transport.port", httpPort + 100)
            .put("discovery.type", "single-node")
            // A nearly full developer disk must not turn test indices read-only.
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .build();
        // What the server's bootstrap does before building a node: ES logging on log4j, to the console
        // (es.sh sends it to .es/logs/es.out).
        LogConfigurator.registerErrorListener();
        LogConfigurator.loadLog4jPlugins();
        LogConfigurator.configureESLogging();
        LogConfigurator.setNodeName("kubesigma-es-1");
        LogConfigurator.configureWithoutConfig(settings);
        Environment env = InternalSettingsPreparer.prepareEnvironment(
            settings, java.util.Map.of(), home.resolve("config"), () -> "kubesigma-es-1");
        Node node = new Node(NodeConstruction.prepareConstruction(env, new ClasspathPlugins(), true));
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception e) {
                e.printStackTrace();
            }
            stopped.countDown();
        }));
        node.start();
        System.out.println("kubesigma-es: started on http://" + host + ":" + httpPort);
        stopped.await();
    }
}
