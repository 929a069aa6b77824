// pgjdbc clients for test_clients.py: same server statement names (S_1, S_2), each client's own SQL, many transactions.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.postgresql.PGStatement;

public class PoolTest {
  static final String SERVER_STATEMENTS =
      "SELECT name, statement FROM pg_prepared_statements WHERE NOT from_sql";

  public static void main(String[] args) throws Exception {
    String url = args[0];
    String user = args[1];
    int clients = Integer.parseInt(args[2]);
    int rounds = Integer.parseInt(args[3]);
    Properties props = new Properties();
    props.setProperty("user", user);
    props.setProperty("password", System.getenv("PGW_PASSWORD"));
    CyclicBarrier barrier = new CyclicBarrier(clients);
    ExecutorService pool = Executors.newFixedThreadPool(clients);
    List<Future<Set<Integer>>> futures = new ArrayList<>();
    for (int i = 0; i < clients; i++) {
      final int client = i;
      futures.add(pool.submit(() -> runClient(client, url, props, rounds, barrier)));
    }
    Map<Integer, Set<Integer>> pids = new HashMap<>();
    String failure = null;
    for (int i = 0; i < clients; i++) {
      try {
        pids.put(i, futures.get(i).get(120, TimeUnit.SECONDS));
      } catch (Exception e) {
        Throwable cause = e.getCause() != null ? e.getCause() : e;
        if (failure == null || !(cause instanceof java.util.concurrent.BrokenBarrierException)) {
          failure = "client " + i + ": " + cause;
          cause.printStackTrace();
        }
      }
    }
    pool.shutdownNow();
    if (failure != null) {
      System.err.println("FAILED " + failure);
      System.exit(1);
    }
    StringBuilder json = new StringBuilder("{\"pids\": {");
    for (int i = 0; i < clients; i++) {
      json.append(i == 0 ? "" : ", ").append('"').append(i).append("\": ").append(pids.get(i));
    }
    System.out.println(json.append("}}"));
    System.exit(0);
  }

  static Set<Integer> runClient(int client, String url, Properties props, int rounds, CyclicBarrier barrier)
      throws Exception {
    // JDBC sends "?" as $1: these are the texts the server sees.
    String q1 = "SELECT " + client + " AS client, ?::int AS n, pg_backend_pid() AS pid";
    String q2 = "SELECT ?::text || '-" + client + "' AS s";
    String q1Server = q1.replace("?", "$1");
    String q2Server = q2.replace("?", "$1");
    Set<Integer> pids = new TreeSet<>();
    try (Connection c = DriverManager.getConnection(url, props)) {
      try {
        barrier.await(60, TimeUnit.SECONDS);
        for (int r = 0; r < rounds; r++) {
          boolean inTransaction = r % 2 == 0;
          c.setAutoCommit(!inTransaction);
          // A new PreparedStatement every round: pgjdbc's statement cache maps the same SQL to the same server
          // statement (S_n), so the names are reused across transactions and server connections.
          try (PreparedStatement ps = c.prepareStatement(q1)) {
            ps.setInt(1, r);
            try (ResultSet rs = ps.executeQuery()) {
              if (!rs.next()) throw new AssertionError("no row");
              int gotClient = rs.getInt("client");
              int gotN = rs.getInt("n");
              if (gotClient != client || gotN != r)
                throw new AssertionError("client " + client + " round " + r + " got client " + gotClient
                    + " n " + gotN);
              pids.add(rs.getInt("pid"));
            }
            if (r > 0 && !ps.unwrap(PGStatement.class).isUseServerPrepare())
              throw new AssertionError("pgjdbc did not use a server-prepared statement");
          }
          try (PreparedStatement ps = c.prepareStatement(q2)) {
            ps.setString(1, Integer.toString(r));
            try (ResultSet rs = ps.executeQuery()) {
              rs.next();
              String s = rs.getString("s");
              if (!s.equals(r + "-" + client))
                throw new AssertionError("client " + client + " round " + r + " got " + s);
            }
          }
          if (inTransaction && r > 0) {
            // Same transaction, so the same server connection that ran the two statements.
            Map<String, String> byText = new HashMap<>();
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(SERVER_STATEMENTS)) {
              while (rs.next()) {
                String name = rs.getString(1);
                if (!name.startsWith("pgw_"))
                  throw new AssertionError("a statement known to the server as " + name);
                byText.put(rs.getString(2), name);
              }
            }
            if (!byText.containsKey(q1Server) || !byText.containsKey(q2Server))
              throw new AssertionError("client " + client + " round " + r
                  + ": its statements are not named statements on the server: " + byText);
          }
          if (inTransaction) c.commit();
          barrier.await(60, TimeUnit.SECONDS);
        }
      } catch (Exception | AssertionError e) {
        barrier.reset();  // the other clients stop instead of waiting
        throw e instanceof Exception ? (Exception) e : new Exception(e);
      }
    }
    return pids;
  }
}
