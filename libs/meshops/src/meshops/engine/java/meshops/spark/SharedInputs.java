package meshops.spark;

import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;

import org.apache.spark.SparkContext;
import org.apache.spark.SparkContext$;
import org.apache.spark.TaskContext;
import org.apache.spark.sql.connector.catalog.Identifier;

import scala.Option;

/**
 * Shared input catalogs ({@code external_catalogs} of the platform config, e.g. {@code samples}):
 * flows read them and never write them.
 *
 * <p>Which catalogs the current thread must not write is the Spark local property {@value
 * #PROPERTY} (comma-separated), which meshops sets on the thread of each flow task (a Spark
 * Connect client: a session tag, see {@link ThreadProperties}); Spark hands local properties on
 * to the jobs (and executor tasks) the thread starts. A thread without it,
 * such as a test's set-up or a tool that loads sample data, writes anywhere. Every write path
 * asks {@link #check}: the catalog plugin's write entry points, the analyzer check of {@link
 * SharedInputsExtension} (SQL, DataFrame writers and Delta's own commands and API) and the
 * volume file system.
 */
public final class SharedInputs {
  public static final String PROPERTY = "meshops.readOnlyCatalogs";

  private SharedInputs() {}

  /** The one line a refused write fails with. */
  public static String message(String catalog) {
    return catalog
        + " is a shared input catalog (external_catalogs in .brickopscfg/config.yml): flows read"
        + " it, never write it; write to your flow's own catalog/schema (brickops tablename) or"
        + " load sample data with tools/taxigen.py";
  }

  /**
   * The one line a write to a table fails with when the run reads it as another deployment's
   * data product (an entry {@code catalog.schema.table} of {@value #PROPERTY}).
   */
  public static String tableMessage(String table) {
    return table
        + " is another deployment's data product this run reads (consumes: in deployment.yml):"
        + " a run never writes to another deployment; write to your flow's own schema (brickops"
        + " tablename)";
  }

  /**
   * Fails with {@link #tableMessage} when table {@code ident} of {@code catalog} is one the
   * current thread only reads.
   */
  static void checkTable(String catalog, Identifier ident) {
    Set<String> readOnly = readOnly();
    if (readOnly.isEmpty() || catalog == null || ident == null) {
      return;
    }
    StringBuilder full = new StringBuilder(catalog);
    for (String part : ident.namespace()) {
      full.append('.').append(part);
    }
    String table = full.append('.').append(ident.name()).toString().toLowerCase(Locale.ROOT);
    if (readOnly.contains(table)) {
      throw SharedInputs.<RuntimeException>raise(new SharedInputException(tableMessage(table)));
    }
  }

  /**
   * Catalogs (and {@code catalog.schema.table} tables) the current thread (or the Spark task it
   * runs) must not write; often none.
   */
  static Set<String> readOnly() {
    String value = null;
    TaskContext task = TaskContext.get();
    if (task != null) {
      value =
          ThreadProperties.get(
              task.getLocalProperty(PROPERTY),
              task.getLocalProperty(ThreadProperties.JOB_TAGS),
              PROPERTY);
    } else {
      Option<SparkContext> context = SparkContext$.MODULE$.getActive();
      if (context.isDefined()) {
        value =
            ThreadProperties.get(
                context.get().getLocalProperty(PROPERTY),
                context.get().getLocalProperty(ThreadProperties.JOB_TAGS),
                PROPERTY);
      }
    }
    Set<String> catalogs = new TreeSet<>();
    if (value != null) {
      // comma-separated in a local property; a Spark Connect tag cannot hold commas: ';' there
      for (String part : value.split("[,;]")) {
        String name = part.trim().toLowerCase(Locale.ROOT);
        if (!name.isEmpty()) {
          catalogs.add(name);
        }
      }
    }
    return catalogs;
  }

  /** Fails with {@link #message} when {@code catalog} is read-only for the current thread. */
  static void check(String catalog) {
    check(catalog, readOnly(), "");
  }

  /** As {@link #check(String)}, with {@code end} after the message. */
  static void check(String catalog, Set<String> readOnly, String end) {
    if (catalog != null && readOnly.contains(catalog.toLowerCase(Locale.ROOT))) {
      throw SharedInputs.<RuntimeException>raise(
          new SharedInputException(message(catalog.toLowerCase(Locale.ROOT)) + end));
    }
  }

  /** The catalog whose schema a metastore database holds ({@code c} of {@code c__s}), or null. */
  static String catalogOfDatabase(String database) {
    if (database == null) {
      return null;
    }
    int at = database.indexOf(UnityCatalog.SEPARATOR);
    return at > 0 ? database.substring(0, at).toLowerCase(Locale.ROOT) : null;
  }

  /**
   * Throws {@code error} (an {@code AnalysisException}, a checked exception) from methods that
   * do not declare it, so that pyspark hands it to Python as its own {@code AnalysisException}.
   */
  @SuppressWarnings("unchecked")
  private static <T extends Throwable> RuntimeException raise(Throwable error) throws T {
    throw (T) error;
  }
}
