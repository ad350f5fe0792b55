package meshops.spark;

import java.util.LinkedHashSet;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.spark.SparkContext;

/**
 * Which tables each task read: every table or view of a {@link UnityCatalog} that the analyzer
 * looked up to read it, while the thread ran under a task (see {@link TaskWrites} for how the
 * task is found). Lookups outside a task (meshops counting the rows a task wrote) are not kept.
 *
 * <p>On a Spark Connect server (the warm engine) the task comes from the operation's session tag,
 * and each execution looks its tables up again, so a DataFrame analysed earlier (outside the
 * task, or for its schema) still records its reads when it runs in the task. What is not seen:
 * tables of the session catalog (two-level names), and files read by path (volumes, Auto
 * Loader sources).
 */
public final class TaskReads {
  /** Per task, tables in first-read order; changed only inside {@code compute}. */
  private static final ConcurrentHashMap<String, Set<String>> READS = new ConcurrentHashMap<>();

  private TaskReads() {}

  static void record(SparkContext context, String table) {
    String task =
        ThreadProperties.get(
            context.getLocalProperty(TaskWrites.TASK_PROPERTY),
            context.getLocalProperty(ThreadProperties.JOB_TAGS),
            TaskWrites.TASK_PROPERTY);
    if (task == null) {
      return;
    }
    READS.compute(
        task,
        (key, tables) -> {
          Set<String> updated = tables == null ? new LinkedHashSet<>() : tables;
          updated.add(table);
          return updated;
        });
  }

  /** Tables read under {@code task}, first read first, then forgotten. */
  public static String[] drain(String task) {
    Set<String> tables = READS.remove(task);
    return tables == null ? new String[0] : tables.toArray(new String[0]);
  }

  /** {@link #drain} as one line per table, for a Spark Connect client (SQL's {@code reflect}). */
  public static String drainLines(String task) {
    return String.join("\n", drain(task));
  }
}
