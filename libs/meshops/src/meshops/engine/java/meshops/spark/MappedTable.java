package meshops.spark;

import java.util.ArrayList;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.UUID;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.catalog.CatalogTable;
import org.apache.spark.sql.connector.catalog.Column;
import org.apache.spark.sql.connector.catalog.SupportsWrite;
import org.apache.spark.sql.connector.catalog.TableCapability;
import org.apache.spark.sql.connector.catalog.V1Table;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.connector.write.LogicalWriteInfo;
import org.apache.spark.sql.connector.write.SupportsTruncate;
import org.apache.spark.sql.connector.write.V1Write;
import org.apache.spark.sql.connector.write.Write;
import org.apache.spark.sql.connector.write.WriteBuilder;
import org.apache.spark.sql.sources.InsertableRelation;
import org.apache.spark.sql.types.StructType;

/**
 * The write side of a table of a {@link UnityCatalog}: it is deliberately not a {@link V1Table}
 * (writers would then drop the catalog from the name), and its write inserts the rows into the
 * mapped session-catalog table with Spark's own V1 insert, so file formats, partition folders
 * and cache refreshes are Spark's.
 */
final class MappedTable implements SupportsWrite {
  private final String fullName;
  private final CatalogTable target;
  private final V1Table metadata;

  private final Column[] columns;

  /**
   * {@code columns}: the order writers see, when it differs from the metastore's (a new table
   * keeps the order of its definition; the metastore moves partition columns to the end).
   */
  MappedTable(String fullName, CatalogTable target, Column[] columns) {
    this.fullName = fullName;
    this.target = target;
    this.metadata = new V1Table(target);
    this.columns = columns == null ? metadata.columns() : columns;
  }

  @Override
  public String name() {
    return fullName;
  }

  @Override
  public Column[] columns() {
    return columns;
  }

  @Override
  public Transform[] partitioning() {
    return metadata.partitioning();
  }

  @Override
  public Map<String, String> properties() {
    return metadata.properties();
  }

  @Override
  public Set<TableCapability> capabilities() {
    return EnumSet.of(
        TableCapability.BATCH_WRITE,
        TableCapability.TRUNCATE,
        TableCapability.V1_BATCH_WRITE);
  }

  @Override
  public WriteBuilder newWriteBuilder(LogicalWriteInfo info) {
    return new Builder();
  }

  /** {@code spark_catalog.`db`.`table`}: fully qualified, so the current catalog cannot matter. */
  static String targetName(CatalogTable table) {
    String db = table.identifier().database().get();
    return "spark_catalog." + quote(db) + "." + quote(table.identifier().table());
  }

  private static String quote(String part) {
    return "`" + part.replace("`", "``") + "`";
  }

  /**
   * Columns in the order of the metastore table, by name when the rows carry every column name.
   *
   * <p>The metastore moves partition columns to the end, while a CREATE TABLE AS SELECT hands
   * over rows in the order of its query; a positional insert would mix the columns up.
   */
  private String selectList(StructType rows) {
    Set<String> names = new HashSet<>();
    for (String field : rows.fieldNames()) {
      names.add(field.toLowerCase(Locale.ROOT));
    }
    List<String> columns = new ArrayList<>();
    for (String field : target.schema().fieldNames()) {
      if (!names.contains(field.toLowerCase(Locale.ROOT))) {
        return "*";
      }
      columns.add(quote(field));
    }
    return String.join(", ", columns);
  }

  /**
   * Inserts the rows with Spark's V1 insert into the metastore table.
   *
   * <p>An overwrite replaces the whole table: the mode goes with the statement, so a session set
   * to dynamic partition overwrite cannot turn a truncate into a partial overwrite. (Dynamic
   * overwrite itself is not offered: Spark has no V1 fallback for it.)
   */
  private void insert(Dataset<Row> data, boolean overwrite) {
    SparkSession spark = data.sparkSession();
    String view = "meshops_write_" + UUID.randomUUID().toString().replace("-", "");
    data.createOrReplaceTempView(view);
    try {
      String into =
          overwrite
              ? "INSERT OVERWRITE TABLE "
                  + targetName(target)
                  + " WITH ('partitionOverwriteMode' = 'static')"
              : "INSERT INTO " + targetName(target);
      spark.sql(into + " SELECT " + selectList(data.schema()) + " FROM " + view);
    } finally {
      spark.catalog().dropTempView(view);
    }
    TaskWrites.record(spark.sparkContext(), fullName);
  }

  private final class Builder implements SupportsTruncate {
    private boolean truncate;

    @Override
    public WriteBuilder truncate() {
      truncate = true;
      return this;
    }

    @Override
    public Write build() {
      final boolean overwrite = truncate;
      return new V1Write() {
        @Override
        public String description() {
          return (overwrite ? "overwrite " : "append to ") + fullName;
        }

        @Override
        public InsertableRelation toInsertableRelation() {
          return new InsertableRelation() {
            @Override
            public void insert(Dataset<Row> data, boolean overwriteAll) {
              MappedTable.this.insert(data, overwrite || overwriteAll);
            }
          };
        }
      };
    }
  }
}
