// Starts DynamoDB Local bound to one address (127.0.0.1 unless -host says otherwise).
//
// DynamoDB Local has no bind-address option: its server listens on every interface. This
// launcher builds the server from the usual command-line arguments (-inMemory, -port, ...),
// sets the host of its HTTP connector before starting it, and then waits, so tests and local
// development never expose a database to the network.
//
// With -exitWhenStdinCloses the JVM exits as soon as its standard input reaches end-of-file,
// i.e. when the process holding the other end of the pipe exits, however it ends (dynamite's
// `testing` module starts it that way, so a server shared by a test binary dies with it).
//
// Usage: java -cp DynamoDBLocal.jar:. LoopbackLauncher [-host ADDR] [-exitWhenStdinCloses]
//            DYNAMODB-LOCAL-ARGS...
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;

public final class LoopbackLauncher {
    public static void main(String[] args) throws Exception {
        String host = "127.0.0.1";
        boolean exitWhenStdinCloses = false;
        List<String> rest = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("-host") && i + 1 < args.length) {
                host = args[++i];
            } else if (args[i].equals("-exitWhenStdinCloses")) {
                exitWhenStdinCloses = true;
            } else {
                rest.add(args[i]);
            }
        }
        if (exitWhenStdinCloses) {
            exitWhenStdinCloses();
        }
        Class<?> runner = Class.forName("software.amazon.dynamodb.services.local.main.ServerRunner");
        Object proxy = runner
            .getMethod("createServerFromCommandLineArgs", String[].class)
            .invoke(null, (Object) rest.toArray(new String[0]));
        Field field = proxy.getClass().getDeclaredField("server");
        field.setAccessible(true);
        Object jetty = field.get(proxy);
        Object[] connectors = (Object[]) jetty.getClass().getMethod("getConnectors").invoke(jetty);
        if (connectors.length == 0) {
            throw new IllegalStateException("DynamoDB Local created no HTTP connector");
        }
        for (Object connector : connectors) {
            Method setHost = connector.getClass().getMethod("setHost", String.class);
            setHost.invoke(connector, host);
        }
        proxy.getClass().getMethod("start").invoke(proxy);
        System.out.println("DynamoDB Local listening on " + host);
        proxy.getClass().getMethod("join").invoke(proxy);
    }

    // Reads standard input until end-of-file on a daemon thread, then halts the JVM at once, so
    // no shutdown hook can keep it alive (meant for -inMemory, where there is nothing to save).
    private static void exitWhenStdinCloses() {
        Thread watcher = new Thread(() -> {
            byte[] buffer = new byte[4096];
            try {
                while (System.in.read(buffer) != -1) {
                    // Discard whatever arrives; only the end matters.
                }
            } catch (java.io.IOException e) {
                // A broken pipe means the parent is gone, too.
            }
            Runtime.getRuntime().halt(0);
        }, "exit-when-stdin-closes");
        watcher.setDaemon(true);
        watcher.start();
    }
}
