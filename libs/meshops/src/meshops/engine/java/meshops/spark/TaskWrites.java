package meshops.spark;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.spark.SparkContext;
import org.apache.spark.sql.classic.SparkSession;

import scala.jdk.javaapi.CollectionConverters;

/**
 * Which tables each task wrote, and the few metastore questions Python asks through py4j.
 *
 * <p>The task is the Spark local property {@value #TASK_PROPERTY} of the thread that writes:
 * pyspark pins each Python thread to one JVM thread, so tasks running side by side in threads
 * keep their records apart without passing anything to the catalog.
 */
public final class TaskWrites {
  public static final String TASK_PROPERTY = "meshops.task";

  /**
   * Per task, tables in first-write order. A set is changed only inside {@code compute} and
   * leaves the map by {@code remove}, so a drain never loses a concurrent record.
   */
  private static final ConcurrentHashMap<String, Set<String>> WRITES = new ConcurrentHashMap<>();

  private TaskWrites() {}

  static void record(SparkContext context, String table) {
    String task =
        ThreadProperties.get(
            context.getLocalProperty(TASK_PROPERTY),
            context.getLocalProperty(ThreadProperties.JOB_TAGS),
            TASK_PROPERTY);
    WRITES.compute(
        task == null ? "" : task,
        (key, tables) -> {
          Set<String> updated = tables == null ? new LinkedHashSet<>() : tables;
          updated.add(table);
          return updated;
        });
  }

  /** Tables written under {@code task} ("" for writes without a task), then forgotten. */
  public static String[] drain(String task) {
    Set<String> tables = WRITES.remove(task);
    return tables == null ? new String[0] : tables.toArray(new String[0]);
  }

  /**
   * {@link #drain} as one line per table, for a Spark Connect client, which calls it on the server
   * with SQL's {@code reflect} (a static method returning a string).
   */
  public static String drainLines(String task) {
    return String.join("\n", drain(task));
  }

  /** Catalogs that own at least one schema in the metastore (databases named {@code c__s}). */
  public static String[] metastoreCatalogs(org.apache.spark.sql.SparkSession spark) {
    Set<String> catalogs = new TreeSet<>();
    List<String> databases =
        new ArrayList<>(
            CollectionConverters.asJava(
                ((SparkSession) spark).sessionState().catalog().listDatabases()));
    for (String db : databases) {
      int at = db.indexOf(UnityCatalog.SEPARATOR);
      if (at > 0 && at + UnityCatalog.SEPARATOR.length() < db.length()) {
        catalogs.add(db.substring(0, at));
      }
    }
    return catalogs.toArray(new String[0]);
  }
}
