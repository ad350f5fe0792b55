package meshops.spark;

import static java.util.Map.entry;

import java.lang.reflect.Method;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.TableIdentifier;
import org.apache.spark.sql.catalyst.analysis.ResolvedIdentifier;
import org.apache.spark.sql.catalyst.analysis.ResolvedNamespace;
import org.apache.spark.sql.catalyst.analysis.ResolvedPersistentView;
import org.apache.spark.sql.catalyst.analysis.ResolvedTable;
import org.apache.spark.sql.catalyst.catalog.CatalogTable;
import org.apache.spark.sql.catalyst.catalog.HiveTableRelation;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.SubqueryAlias;
import org.apache.spark.sql.catalyst.rules.Rule;
import org.apache.spark.sql.connector.catalog.CatalogPlugin;
import org.apache.spark.sql.connector.catalog.Identifier;
import org.apache.spark.sql.execution.datasources.LogicalRelation;
import org.apache.spark.sql.execution.datasources.v2.DataSourceV2Relation;

import scala.Option;
import scala.jdk.javaapi.CollectionConverters;
import scala.runtime.AbstractFunction1;
import scala.runtime.BoxedUnit;

/**
 * Session extension (in {@code spark.sql.extensions}) whose analyzer rule refuses writes to the
 * shared input catalogs of the current thread ({@link SharedInputs}).
 *
 * <p>The catalog plugin sees most writes to {@code samples.s.t}, but not all: Delta's own
 * commands (TRUNCATE, OPTIMIZE, RESTORE, VACUUM, constraints) and its {@code DeltaTable} API work
 * on a table once it is loaded, and a two-level name ({@code spark_catalog.samples__s.t}) never
 * reaches the plugin. Every one of them is an analyzed plan first: this rule looks at the target
 * of each write command in it (reads inside, such as a CTAS's query, are not targets) and fails
 * before anything runs. It runs as a post-hoc resolution rule, since Spark appends the whole plan
 * to the message of a check rule's error while the refusal is one line; and again as a check
 * rule, for plans that skip resolution ({@code DeltaTable.merge} only checks its command). There
 * the message ends in a line break, so that its first line is still the refusal alone.
 */
public final class SharedInputsExtension
    extends AbstractFunction1<SparkSessionExtensions, BoxedUnit> {

  /** Write commands (Spark's and Delta's, by simple class name) and their target fields. */
  private static final Map<String, List<String>> TARGETS =
      Map.ofEntries(
          // Spark: data
          entry("AppendData", List.of("table")),
          entry("OverwriteByExpression", List.of("table")),
          entry("OverwritePartitionsDynamic", List.of("table")),
          entry("ReplaceData", List.of("table")),
          entry("WriteDelta", List.of("table")),
          entry("InsertIntoStatement", List.of("table")),
          entry("MergeIntoTable", List.of("targetTable")),
          entry("UpdateTable", List.of("table")),
          entry("DeleteFromTable", List.of("table")),
          entry("TruncateTable", List.of("table")),
          entry("TruncatePartition", List.of("table")),
          // Spark: tables, views, schemas
          entry("CreateTable", List.of("name")),
          entry("CreateTableAsSelect", List.of("name")),
          entry("ReplaceTable", List.of("name")),
          entry("ReplaceTableAsSelect", List.of("name")),
          entry("DropTable", List.of("child")),
          entry("RenameTable", List.of("child")),
          entry("AddColumns", List.of("table")),
          entry("ReplaceColumns", List.of("table")),
          entry("DropColumns", List.of("table")),
          entry("RenameColumn", List.of("table")),
          entry("AlterColumns", List.of("table")),
          entry("AlterColumn", List.of("table")),
          entry("SetTableProperties", List.of("table")),
          entry("UnsetTableProperties", List.of("table")),
          entry("SetTableLocation", List.of("table")),
          entry("SetTableSerDeProperties", List.of("table")),
          entry("CommentOnTable", List.of("table")),
          entry("AddPartitions", List.of("table")),
          entry("DropPartitions", List.of("table")),
          entry("RenamePartitions", List.of("table")),
          entry("RecoverPartitions", List.of("table")),
          entry("AlterTableClusterBy", List.of("table")),
          entry("AlterTableAddConstraint", List.of("table")),
          entry("AlterTableDropConstraint", List.of("table")),
          entry("AlterTableCollation", List.of("table")),
          entry("CreateView", List.of("child")),
          entry("DropView", List.of("child")),
          entry("AlterViewAs", List.of("child")),
          entry("AlterViewSchemaBinding", List.of("child")),
          entry("CreateNamespace", List.of("name")),
          entry("DropNamespace", List.of("namespace")),
          entry("SetNamespaceProperties", List.of("namespace")),
          entry("SetNamespaceLocation", List.of("namespace")),
          entry("CommentOnNamespace", List.of("child")),
          // Spark: V1 commands (two-level names in spark_catalog)
          entry("CreateDataSourceTableCommand", List.of("table")),
          entry("CreateDataSourceTableAsSelectCommand", List.of("table")),
          entry("CreateTableCommand", List.of("table")),
          entry("InsertIntoHadoopFsRelationCommand", List.of("catalogTable")),
          entry("InsertIntoDataSourceCommand", List.of("logicalRelation")),
          entry("DropTableCommand", List.of("tableName")),
          entry("TruncateTableCommand", List.of("tableName")),
          entry("CreateViewCommand", List.of("name")),
          // Delta Lake
          entry("MergeIntoCommand", List.of("catalogTable", "target")),
          entry("UpdateCommand", List.of("catalogTable", "target")),
          entry("DeleteCommand", List.of("catalogTable", "target")),
          entry("DeltaMergeInto", List.of("target")),
          entry("DeltaUpdateTable", List.of("child")),
          entry("DeltaDelete", List.of("child")),
          entry("TruncateDeltaTableCommand", List.of("child")),
          entry("OptimizeTableCommand", List.of("child")),
          entry("VacuumTableCommand", List.of("child")),
          entry("RestoreTableCommand", List.of("sourceTable")),
          entry("DeltaReorgTableCommand", List.of("target")),
          entry("CreateDeltaTableCommand", List.of("table")),
          entry("WriteIntoDelta", List.of("catalogTableOpt")),
          entry("AlterTableAddConstraintDeltaCommand", List.of("table")),
          entry("AlterTableDropConstraintDeltaCommand", List.of("table")),
          entry("AlterTableSetPropertiesDeltaCommand", List.of("table")),
          entry("AlterTableUnsetPropertiesDeltaCommand", List.of("table")),
          entry("AlterTableAddColumnsDeltaCommand", List.of("table")),
          entry("AlterTableChangeColumnDeltaCommand", List.of("table")),
          entry("AlterTableReplaceColumnsDeltaCommand", List.of("table")),
          entry("AlterTableDropColumnsDeltaCommand", List.of("table")),
          entry("AlterTableClusterByDeltaCommand", List.of("table")));

  @Override
  public BoxedUnit apply(SparkSessionExtensions extensions) {
    extensions.injectPostHocResolutionRule(new Builder());
    extensions.injectCheckRule(new CheckBuilder());
    return BoxedUnit.UNIT;
  }

  private static final class CheckBuilder
      extends AbstractFunction1<
          org.apache.spark.sql.SparkSession, scala.Function1<LogicalPlan, BoxedUnit>> {
    @Override
    public scala.Function1<LogicalPlan, BoxedUnit> apply(org.apache.spark.sql.SparkSession s) {
      return new Check();
    }
  }

  /** The same as {@link Refuse}, for plans only checked; Spark adds ";\n" and the plan. */
  private static final class Check extends AbstractFunction1<LogicalPlan, BoxedUnit> {
    @Override
    public BoxedUnit apply(LogicalPlan plan) {
      Set<String> readOnly = SharedInputs.readOnly();
      if (!readOnly.isEmpty()) {
        visit(plan, readOnly, "\n");
      }
      return BoxedUnit.UNIT;
    }
  }

  private static final class Builder
      extends AbstractFunction1<org.apache.spark.sql.SparkSession, Rule<LogicalPlan>> {
    @Override
    public Rule<LogicalPlan> apply(org.apache.spark.sql.SparkSession session) {
      return new Refuse();
    }
  }

  /** Changes no plan: fails when one writes to a read-only catalog of the current thread. */
  private static final class Refuse extends Rule<LogicalPlan> {
    @Override
    public LogicalPlan apply(LogicalPlan plan) {
      Set<String> readOnly = SharedInputs.readOnly();
      if (!readOnly.isEmpty()) {
        visit(plan, readOnly, "");
      }
      return plan;
    }
  }

  private static void visit(LogicalPlan plan, Set<String> readOnly, String end) {
    List<String> fields = TARGETS.get(plan.getClass().getSimpleName());
    if (fields != null) {
      for (int i = 0; i < plan.productArity(); i++) {
        if (fields.contains(plan.productElementName(i))) {
          SharedInputs.check(catalogOf(plan.productElement(i)), readOnly, end);
        }
      }
    }
    for (LogicalPlan child : CollectionConverters.asJava(plan.children())) {
      visit(child, readOnly, end);
    }
  }

  /** The catalog a write target belongs to (a table, view or schema in any of its forms). */
  static String catalogOf(Object target) {
    if (target instanceof Option<?> option) {
      return option.isDefined() ? catalogOf(option.get()) : null;
    }
    if (target instanceof ResolvedIdentifier resolved) {
      return catalogOf(resolved.catalog(), resolved.identifier());
    }
    if (target instanceof ResolvedTable resolved) {
      return catalogOf(resolved.catalog(), resolved.identifier());
    }
    if (target instanceof ResolvedPersistentView resolved) {
      return catalogOf(resolved.catalog(), resolved.identifier());
    }
    if (target instanceof ResolvedNamespace resolved) {
      List<String> namespace = CollectionConverters.asJava(resolved.namespace());
      return catalogOf(resolved.catalog(), namespace.isEmpty() ? null : namespace.get(0));
    }
    if (target instanceof DataSourceV2Relation relation) {
      if (relation.catalog().isDefined() && relation.identifier().isDefined()) {
        return catalogOf(relation.catalog().get(), relation.identifier().get());
      }
      return catalogOf(relation.table());
    }
    if (target instanceof SubqueryAlias alias) {
      return catalogOf(alias.child());
    }
    if (target instanceof LogicalRelation relation) {
      return catalogOf(relation.catalogTable());
    }
    if (target instanceof HiveTableRelation relation) {
      return catalogOf(relation.tableMeta());
    }
    if (target instanceof CatalogTable table) {
      return catalogOf(table.identifier());
    }
    if (target instanceof TableIdentifier identifier) {
      return identifier.database().isDefined()
          ? SharedInputs.catalogOfDatabase(identifier.database().get())
          : null;
    }
    return target == null ? null : catalogOfTable(target);
  }

  /** Delta's {@code DeltaTableV2} (not on the class path this is compiled against). */
  private static String catalogOfTable(Object table) {
    try {
      Method method = table.getClass().getMethod("catalogTable");
      return catalogOf(method.invoke(table));
    } catch (ReflectiveOperationException e) {
      return null;
    }
  }

  private static String catalogOf(CatalogPlugin catalog, Identifier identifier) {
    String[] namespace = identifier.namespace();
    return catalogOf(catalog, namespace.length == 0 ? null : namespace[0]);
  }

  /** {@code c} for catalog {@code c}, and for {@code spark_catalog} with database {@code c__s}. */
  private static String catalogOf(CatalogPlugin catalog, String firstNamespace) {
    if (catalog instanceof UnityCatalog) {
      return catalog.name();
    }
    return SharedInputs.catalogOfDatabase(firstNamespace);
  }
}
